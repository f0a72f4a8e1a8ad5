# The processing service: HTTP, the job store, jobs in child processes, the STAC API.
deforma_module(service DEPENDS ops maps catalog io core)
