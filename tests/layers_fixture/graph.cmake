# A declared module graph for the layering check's tests: render is declared before io, yet io does not
# depend on it, so io may not include it.
set(DEFORMA_MODULES core render io ops)
set(DEFORMA_MODULE_USES_core)
set(DEFORMA_MODULE_USES_render core)
set(DEFORMA_MODULE_USES_io core)
set(DEFORMA_MODULE_USES_ops core io render)
