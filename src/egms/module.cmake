# EGMS point products: reading, models, referencing, calibration, Ortho.
deforma_module(egms DEPENDS pipeline render io core)
