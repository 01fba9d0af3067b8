"""ASGI/WSGI middleware, route templates and outbound propagation."""
