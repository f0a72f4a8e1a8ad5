# Correction and filtering of correlation results, fault profiles, glaciers.
deforma_module(filter DEPENDS render io core)
