# The map server's drawing: tile matrix sets, tiles, legends, point queries, vector tiles, capabilities.
deforma_module(maps DEPENDS egms render io core)
