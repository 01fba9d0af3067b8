"""Stands in for an application module, so that its exceptions have a qualified name."""


class Declined(Exception):
    """A payment the processor refused."""
