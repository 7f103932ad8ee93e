"""The HTTP API: thin routers that parse a request, call a service function and map the
result to a response model."""
