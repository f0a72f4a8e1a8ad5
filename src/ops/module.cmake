# The registry of operations offered to the CLI and the service.
deforma_module(ops DEPENDS catalog egms pipeline timeseries filter correlate render io core)
