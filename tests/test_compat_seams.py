"""OpenTelemetry's and structlog's private parts are read in obskit._compat only, and still hold.

The private names of each library are harvested from its installed source (module-level names,
names its classes set on ``self`` or declare, private modules); obskit's source outside
``obskit/_compat`` may not import them, read them from one of the library's modules, or read
them from an object (by attribute or ``getattr``) unless ``obskit._compat`` declares the name as
part of a layout it checks (a span's fields, a bound logger's fields). A private name that
obskit's own classes also define (``_lock``, say) cannot be told apart by reading the source, and
is left to review.

CI runs this file against the oldest and the newest versions ``pyproject.toml`` allows, so a
release that drops one of these internals fails here first.
"""

from __future__ import annotations

import ast
import contextvars
import importlib.metadata
import threading
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace

import obskit
from obskit._compat import otel as otel_compat
from obskit._compat import structlog as structlog_compat

SRC = Path(obskit.__file__).parent
COMPAT = SRC / "_compat"
# library root package -> the distributions whose internals obskit may come to read
LIBRARIES = {
    "opentelemetry": ("opentelemetry-api", "opentelemetry-sdk"),
    "structlog": ("structlog",),
}
ALLOWED_FIELDS = otel_compat.SPAN_FIELDS | structlog_compat.BOUND_LOGGER_FIELDS
# The standard library's locks have private methods of their own (``_at_fork_reinit``, which
# obskit calls after a fork) that OpenTelemetry's classes happen to define too.
STDLIB_LOCK_NAMES = frozenset(
    name
    for lock in (threading.Lock(), threading.RLock(), threading.Condition())
    for name in dir(lock)
    if name.startswith("_") and not name.startswith("__")
)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _library_files(distribution: str) -> Iterator[Path]:
    files = importlib.metadata.distribution(distribution).files or ()
    for file in files:
        if file.suffix == ".py":
            yield Path(str(file.locate()))


def _class_private_names(tree: ast.AST) -> set[str]:
    """Private names classes in ``tree`` set on ``self``/``cls`` or declare in their bodies."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                targets = (
                    item.targets
                    if isinstance(item, ast.Assign)
                    else [item.target]
                    if isinstance(item, ast.AnnAssign)
                    else []
                )
                names |= {t.id for t in targets if isinstance(t, ast.Name) and _private(t.id)}
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
                    names.add(item.name)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and _private(node.attr)
        ):
            names.add(node.attr)
    return names


def _module_private_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name) and _private(t.id)}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and _private(node.name):
            names.add(node.name)
    return names


def library_private_names() -> set[str]:
    """Every private module-level and class-level name of the libraries' installed source."""
    names: set[str] = set()
    for distributions in LIBRARIES.values():
        for distribution in distributions:
            for path in _library_files(distribution):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                names |= _module_private_names(tree) | _class_private_names(tree)
                names |= {part for part in path.with_suffix("").parts if _private(part)}
    return names


def _library_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to one of the libraries' modules or objects by an import."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    aliases.add(alias.asname or alias.name.split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and not node.level
            and node.module.split(".")[0] in LIBRARIES
        ):
            aliases |= {alias.asname or alias.name for alias in node.names}
    return aliases


def _own_private_names(files: Iterable[Path]) -> set[str]:
    """Private names obskit's own classes (not subclasses of the libraries') define."""
    names: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = _library_aliases(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            roots = {_root(base) for base in node.bases}
            if not roots & aliases:
                names |= _class_private_names(node)
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def violations(path: Path, private: set[str], own: set[str]) -> list[str]:
    """What ``path`` reads of the libraries' private names, as ``file:line what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _library_aliases(tree)
    found = []

    def where(node: ast.AST) -> str:
        return f"{path.name}:{getattr(node, 'lineno', 0)}"

    def on_object(receiver: ast.expr, name: str) -> bool:
        """Whether reading ``receiver.name`` reads a private name of a library."""
        if not _private(name):
            return False
        if _root(receiver) in aliases and isinstance(receiver, ast.Name):
            return True  # a private name of one of the libraries' modules (or classes)
        if isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            return False
        return (
            name in private
            and name not in own
            and name not in ALLOWED_FIELDS
            and name not in STDLIB_LOCK_NAMES
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            parts = node.module.split(".")
            if parts[0] in LIBRARIES and (
                any(_private(p) for p in parts) or any(_private(a.name) for a in node.names)
            ):
                found.append(f"{where(node)} from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(_private(p) for p in parts):
                    found.append(f"{where(node)} import {alias.name}")
        elif isinstance(node, ast.Attribute) and on_object(node.value, node.attr):
            found.append(f"{where(node)} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and on_object(node.args[0], node.args[1].value)
        ):
            found.append(f"{where(node)} {node.func.id}(..., {node.args[1].value!r})")
    return found


def _obskit_files() -> list[Path]:
    return [path for path in sorted(SRC.rglob("*.py")) if COMPAT not in path.parents]


def test_only_compat_reads_the_libraries_private_names() -> None:
    """No module outside obskit._compat touches a private name of OpenTelemetry or structlog."""
    private = library_private_names()
    assert {"_RUNTIME_CONTEXT", "_SPAN_KEY", "_span_processors", "_CONTEXT_VARS"} <= private
    files = _obskit_files()
    own = _own_private_names(files)
    found = [v for path in files for v in violations(path, private, own)]
    assert [] == found


def test_checker_finds_each_kind_of_access(tmp_path: Path) -> None:
    """The checker reports private imports, module attributes, getattr and undeclared fields."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from opentelemetry import context as otel_context\n"
        "from opentelemetry.trace.propagation import _SPAN_KEY\n"
        "import structlog._base\n"
        "from structlog import contextvars\n"
        "a = otel_context._RUNTIME_CONTEXT\n"
        "b = getattr(contextvars, '_CONTEXT_VARS', None)\n"
        "c = getattr(tracer.span_processor, '_span_processors', None)\n"
        "d = span._attributes\n"  # declared by obskit._compat.otel: allowed
        "e = registry._lock\n"  # also obskit's own name: not told apart
        "class Own:\n"
        "    def __init__(self):\n"
        "        self._lock = None\n"
        "        self._span_processors = ()\n"  # on self: allowed
    )
    private = library_private_names()
    found = violations(source, private, own={"_lock"})
    assert [
        "sample.py:2 from opentelemetry.trace.propagation import ...",
        "sample.py:3 import structlog._base",
        "sample.py:5 ._RUNTIME_CONTEXT",
        "sample.py:6 getattr(..., '_CONTEXT_VARS')",
        "sample.py:7 getattr(..., '_span_processors')",
    ] == sorted(found)


def test_declared_fields_are_the_ones_read() -> None:
    """Every span or logger field obskit._compat declares is read somewhere outside it."""
    read: set[str] = set()
    for path in _obskit_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
            ):
                value = node.args[1]
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    read.add(value.value)
    assert set() == ALLOWED_FIELDS - read


# --- the internals hold on the installed versions, and the fallbacks work where they do not ---


def test_span_layout_holds() -> None:
    """The installed SDK keeps its spans' fields where obskit reads them."""
    assert otel_compat.SPAN_LAYOUT_PROBLEM is None


def test_span_layout_problem_names_what_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """A span that keeps its attributes elsewhere is reported, by the field's name."""
    original = otel_compat.ReadableSpan

    class Moved(original):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            self.moved_attributes = self._attributes
            del self._attributes

    monkeypatch.setattr(otel_compat, "ReadableSpan", Moved)
    problem = otel_compat._span_layout_problem()
    assert problem is not None
    assert "_attributes" in problem
    assert "_events" not in problem


def test_tracing_refuses_a_span_layout_it_would_misread(monkeypatch: pytest.MonkeyPatch) -> None:
    """With spans laid out differently, init() wires no tracing and says why; the rest runs."""
    from obskit import _guard, _live, testing

    monkeypatch.setattr(otel_compat, "SPAN_LAYOUT_PROBLEM", "spans moved")
    previous = _guard.set_strict(False)
    try:
        before = _guard.counts().get("init.tracing", 0)
        with testing.isolated(service_name="compat", tracing=True, metrics=True):
            assert _live.part("tracing") is None
            assert _live.metrics() is not None
            assert before + 1 == _guard.counts().get("init.tracing", 0)
    finally:
        _guard.set_strict(previous)


def test_bound_logger_fields_hold() -> None:
    """structlog's BoundLoggerBase keeps the fields obskit's bound logger reads."""
    logger, processors, context = object(), [lambda *a: a], {"k": "v"}
    bound = structlog.BoundLoggerBase(logger, processors, context)  # type: ignore[arg-type]
    kept = {"_logger": logger, "_processors": processors, "_context": context}
    assert set(kept) == structlog_compat.BOUND_LOGGER_FIELDS
    assert dict.fromkeys(kept, True) == {
        name: getattr(bound, name) is value for name, value in kept.items()
    }


def test_structlog_registry_is_found_and_tracks_binds() -> None:
    """structlog's registry of context variables is found, and a bind adds its variable."""
    registry = structlog_compat.CONTEXT_VARS
    assert registry is not None
    structlog.contextvars.bind_contextvars(compat_probe=1)
    try:
        assert any(var.name.endswith("compat_probe") for var in registry.values())
    finally:
        structlog.contextvars.unbind_contextvars("compat_probe")


def test_context_variable_is_the_current_context() -> None:
    """The default runtime's variable holds what get_current() returns, and attach sets it."""
    variable = otel_compat.context_variable()
    assert variable is not None
    token = otel_context.attach(otel_context.set_value("compat-probe", 1))
    try:
        assert variable.get() is otel_context.get_current()
        assert 1 == variable.get().get("compat-probe")
    finally:
        otel_context.detach(token)


def test_context_variable_falls_back_for_another_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any runtime context but the default one gives None (the public API is used then)."""

    class OtherRuntime:
        _current_context: contextvars.ContextVar[object] = contextvars.ContextVar("other")

    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", OtherRuntime())
    assert otel_compat.context_variable() is None


def test_span_key_is_where_get_current_span_looks() -> None:
    """A context holding a span under SPAN_KEY is one whose current span is that span."""
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    assert span is trace.get_current_span(otel_context.Context({otel_compat.SPAN_KEY: span}))


def test_span_key_is_found_without_the_private_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the SDK's private constant the key is found through the public API."""
    key = otel_compat.SPAN_KEY
    monkeypatch.setattr(otel_compat, "propagation", types.SimpleNamespace())
    assert key == otel_compat._span_key()


def test_suppression_keys_are_the_apis() -> None:
    """The suppression key obskit sets is the one the API's own helpers set."""
    from opentelemetry.instrumentation.utils import (
        is_instrumentation_enabled,
        suppress_instrumentation,
    )

    with suppress_instrumentation():
        assert otel_context.get_value(otel_compat.SUPPRESS_INSTRUMENTATION_KEY) is True
        assert not is_instrumentation_enabled()


def test_tracer_internals_are_found() -> None:
    """An SDK tracer's processors, scope and limits are where obskit._compat looks."""
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_attributes=7))
    processor = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("compat-probe")
    try:
        processors = getattr(tracer.span_processor, otel_compat.SPAN_PROCESSORS, None)  # type: ignore[attr-defined]
        assert (processor,) == tuple(processors)
        scope = otel_compat.instrumentation_scope(tracer)
        assert scope is not None
        assert "compat-probe" == scope.name
        limits = otel_compat.span_limits(tracer)
        assert limits is not None
        assert 7 == limits.max_span_attributes
        config = getattr(tracer, otel_compat.TRACER_CONFIG, None)
        assert config is None or getattr(config, "is_enabled", True)
    finally:
        provider.shutdown()


def test_no_lightweight_span_without_the_tracer_internals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracer whose limits cannot be read gets ordinary SDK spans, not obskit's own."""
    from obskit import testing
    from obskit.tracing import api, server_span

    with testing.isolated(service_name="compat", tracing=True, sampling="tail"):
        tracer = api.get_tracer()
        assert server_span.lightweight(tracer)
        monkeypatch.setattr(otel_compat, "span_limits", lambda tracer: None)
        monkeypatch.setattr(server_span._memo, "last", server_span._NO_ORIGIN)
        assert not server_span.lightweight(tracer)
