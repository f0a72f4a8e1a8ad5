# GDAL/OGR: rasters, windows, tile planning and the streaming executor, COG writing, vectors, dates.
deforma_module(io DEPENDS core)
