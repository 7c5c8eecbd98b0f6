"""The HTTP API: the resolver, authentication and scopes, and the routers of each part of the product."""
