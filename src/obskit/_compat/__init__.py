"""The seams between obskit and the private parts of the libraries it builds on.

Each module here is the one place obskit reads one library's internals: :mod:`.otel` for
OpenTelemetry, :mod:`.structlog` for structlog. Every lookup is made once, at import, and comes
with what obskit does when a release of the library no longer has it. No other module of obskit
names a private attribute or module of those libraries (``tests/test_compat_seams.py``), and CI
runs the suite against both the oldest releases ``pyproject.toml`` allows and the newest.
"""
