"""Load a SPEC: a YAML file (OpenSLO v1 or obskit's short form) or ``module:attribute``.

``module:attribute`` names Python objectives — an :class:`~obskit.slo.Objective`, a sequence of
them, an :class:`~obskit.slo.ObjectiveSet`, or a function returning one of those.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from obskit.slo.objectives import ObjectiveSet, SpecError

__all__ = ["load"]


def _from_yaml(path: Path) -> ObjectiveSet:
    from obskit.slo import _yamlread, openslo, shortform

    docs = list(_yamlread.read(path))
    if not docs:
        raise SpecError(f"{path}: no YAML document in the file")
    first = docs[0].root()
    version = first.value.get("apiVersion") if isinstance(first.value, dict) else None
    if isinstance(first.value, list) and first.value and isinstance(first.value[0], dict):
        version = first.value[0].get("apiVersion")
    if version == shortform.API_VERSION:
        if len(docs) != 1:
            raise SpecError(f"{path}: the {shortform.API_VERSION} form is one document")
        return shortform.parse(first)
    if version == openslo.API_VERSION:
        return openslo.parse(docs)
    raise first.error(
        f"apiVersion is {openslo.API_VERSION} (OpenSLO) or {shortform.API_VERSION} "
        f"(obskit's short form), not {version!r}"
    )


def _from_python(spec: str) -> ObjectiveSet:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SpecError(f"{spec}: a SPEC is a YAML file or module:attribute")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as `python -m` would: modules of the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{spec}: cannot import {module_name} ({exc})") from None
    except Exception as exc:  # the user's module failed while importing: say so in one line
        raise SpecError(f"{spec}: importing {module_name} raised {_said(exc)}") from None
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise SpecError(f"{spec}: {module_name} has no attribute {attribute}")
        value = getattr(value, part)
    if callable(value) and not isinstance(value, type):
        try:
            value = value()
        except Exception as exc:  # a factory of objectives that fails, or needs arguments
            raise SpecError(f"{spec}: calling {attribute}() raised {_said(exc)}") from None
    try:
        return ObjectiveSet.of(value)
    except SpecError as exc:
        raise SpecError(f"{spec}: {exc}") from None


def _said(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load(spec: str | Path) -> ObjectiveSet:
    """The objectives a SPEC declares; :class:`~obskit.slo.SpecError` says what is wrong."""
    text = str(spec)
    path = Path(text)
    if path.suffix in (".yml", ".yaml", ".json") or path.is_file():
        if path.is_dir():
            raise SpecError(f"{text}: a directory, not a YAML file")
        if not path.is_file():
            raise SpecError(f"{text}: no such file")
        return _from_yaml(path)
    return _from_python(text)
