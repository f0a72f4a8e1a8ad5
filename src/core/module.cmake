# Errors, grids, progress, operation declarations, logging, order statistics, text helpers.
deforma_module(core)
