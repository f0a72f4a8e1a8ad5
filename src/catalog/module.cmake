# The catalogue: STAC items in SQLite (R*Tree, FTS5), ingest of scenes and products, STAC search.
deforma_module(catalog DEPENDS egms pipeline io core)
