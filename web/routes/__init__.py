"""The HTTP API, one module per resource; each endpoint a module-level function that reads
the service through ``web.context.context(request)``."""
