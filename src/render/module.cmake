# Colour scales, quicklooks with legends, plots, PNG writing.
deforma_module(render DEPENDS io core)
