# Matching kernels, the streamed pair driver, SAR amplitude inputs.
deforma_module(correlate DEPENDS render io core)
