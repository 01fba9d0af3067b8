"""Tracing: tracer wiring, the tail sampler, its policies and export."""
