# Image sets, pair networks, inversion, time-series products, decomposition, composites.
deforma_module(timeseries DEPENDS correlate render io core)
