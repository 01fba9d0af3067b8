"""``obskit doctor [MODULE:ATTR]``: what obskit does in this service, checked.

Without an argument it initialises obskit from the environment. With ``module:attr`` it imports
the application the way uvicorn does — the current directory (``--app-dir``) first on
``sys.path``, ``attr`` looked up dotted, a factory called when ``--factory`` says so, when the
target ends in ``()`` (gunicorn's spelling) or when it takes no arguments — and reports the
obskit the application configured itself. Either way it prints JSON: the effective settings and
where each came from, what is wired, the application and its middleware, and two checks made
from here:

* the metrics server (when one was started) answers a scrape;
* the trace endpoint (when one is set) accepts a TCP connection — opened and closed, nothing is
  sent; without an endpoint, the local trace file is named.

Exit status: 0 when every check passes, 1 when one fails (listed under ``problems``), 2 when the
application cannot be imported or a setting is invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import socket
import sys
import traceback
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AppImportError", "add_arguments", "find_middleware", "load_app", "run"]


class AppImportError(Exception):
    """The ``module:attr`` target could not be imported or looked up."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``obskit doctor [MODULE:ATTR] [--factory] [--app-dir DIR] [--timeout S]``."""
    parser.add_argument(
        "app",
        nargs="?",
        metavar="MODULE:ATTR",
        help="import the application as uvicorn does and report the obskit it configured",
    )
    parser.add_argument(
        "--factory", action="store_true", help="ATTR is a factory returning the application"
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        help="directory put first on sys.path before importing (default: the current one)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="seconds each check may take (default: 2)",
    )


def load_app(target: str, app_dir: str = ".", factory: bool = False) -> Any:
    """The object ``module:attr`` names, imported as uvicorn does; a factory's result if one."""
    module_name, _, attrs = target.partition(":")
    if attrs.endswith("()"):
        attrs, factory = attrs[:-2], True
    if not module_name or not attrs:
        raise AppImportError(f"{target!r} is not of the form MODULE:ATTR (e.g. main:app)")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise AppImportError(
            f"no module named {module_name!r} (looked in {directory} first)"
        ) from None
    found: Any = module
    for attr in attrs.split("."):
        try:
            found = getattr(found, attr)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attrs!r}") from None
    if factory or _takes_no_arguments(found):
        if not callable(found):
            raise AppImportError(f"{target!r} is not callable, so it is no factory")
        return found()
    return found


def _takes_no_arguments(value: Any) -> bool:
    """A plain function (or class) callable with no argument: a factory, as uvicorn finds one."""
    if not (inspect.isfunction(value) or inspect.ismethod(value)):
        return False
    try:
        parameters = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


def find_middleware(app: Any, depth: int = 8) -> list[str]:
    """The chain of wrappers from ``app`` inwards to obskit's middleware; empty if none."""
    from obskit.web.asgi import ASGIMiddleware
    from obskit.web.wsgi import WSGIMiddleware

    chain: list[str] = []
    current = app
    for _ in range(depth):
        if current is None:
            break
        chain.append(f"{type(current).__module__}.{type(current).__qualname__}")
        if isinstance(current, (ASGIMiddleware, WSGIMiddleware)):
            return chain
        for middleware in getattr(current, "user_middleware", None) or ():
            if getattr(middleware, "cls", None) in (ASGIMiddleware, WSGIMiddleware):
                return [*chain, f"add_middleware({middleware.cls.__name__})"]
        current = getattr(current, "wsgi_app", None) or getattr(current, "app", None)
    return []


def _connect(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "accepts connections"
    except TimeoutError:
        return f"no answer within {timeout} s"
    except OSError as exc:
        return "refused" if isinstance(exc, ConnectionRefusedError) else str(exc.strerror or exc)


def _trace_check(report: dict[str, Any], timeout: float) -> dict[str, Any]:
    settings = report["settings"]
    if not settings.get("tracing"):
        return {"state": "tracing is off"}
    if "exporter " in str(report["wired"].get("traces", "")):
        return {"state": "spans go to the application's own exporter"}
    if not settings.get("otlp_endpoint"):
        return {"state": "no endpoint", "destination": report["wired"].get("traces")}
    # The report's copy is redacted (a password in the URL is replaced): connect to the real one.
    from obskit import _runtime

    runtime = _runtime.current()
    endpoint = runtime.settings.otlp_endpoint if runtime is not None else None
    if not endpoint:
        return {"state": "no endpoint", "destination": report["wired"].get("traces")}
    parts = urlsplit(endpoint)
    default = 4317 if settings.get("otlp_protocol") == "grpc" else 4318
    port = parts.port or (443 if parts.scheme == "https" else default)
    host = parts.hostname or ""
    shown = settings["otlp_endpoint"]
    return {"endpoint": shown, "tcp": _connect(host, port, timeout), "address": f"{host}:{port}"}


def _metrics_check(report: dict[str, Any], timeout: float) -> dict[str, Any]:
    url = report["wired"].get("metrics_server")
    if not url or not str(url).startswith("http"):
        return {"state": str(url) if url else "no metrics server (metrics_port unset)"}
    from urllib.request import urlopen

    from obskit._selfcalls import quiet

    # A server bound to every address is scraped on loopback from here.
    probe = url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")
    try:
        with quiet(), urlopen(probe, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
            status = response.status
    except OSError as exc:
        return {"url": url, "answer": str(getattr(exc, "reason", exc))}
    families = sum(1 for line in body.splitlines() if line.startswith("# TYPE "))
    return {"url": url, "answer": status, "families": families}


def _problems(report: dict[str, Any]) -> list[str]:
    problems = []
    if not report.get("initialized"):
        problems.append(
            "the application never called obskit.init() (nor imported obskit.auto): "
            "obskit records nothing"
        )
        return problems
    app = report.get("app")
    if app is not None and not app["obskit_middleware"]:
        problems.append(
            f"{app['target']} is not wrapped by obskit.ASGIMiddleware or obskit.WSGIMiddleware: "
            "no RED metrics, spans or access lines for its requests"
        )
    trace = report["checks"]["trace_endpoint"]
    if "tcp" in trace and trace["tcp"] != "accepts connections":
        problems.append(f"the trace endpoint {trace['address']}: {trace['tcp']}")
    metrics = report["checks"]["metrics_server"]
    if "answer" in metrics and metrics["answer"] != 200:
        problems.append(f"the metrics server {metrics['url']} answered {metrics['answer']}")
    return problems


def run(args: argparse.Namespace) -> int:
    """Print the effective configuration, what is wired and the checks, as JSON."""
    import obskit

    # The application's own output (and obskit's lines) go to stderr: stdout is the report.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            report = _examine(args)
        except AppImportError as exc:
            print(f"obskit doctor: cannot import the application: {exc}", file=sys.stderr)
            return 2
        except obskit.ConfigError as exc:
            print(f"obskit doctor: {exc}", file=sys.stderr)
            return 2
        except Exception:
            traceback.print_exc()
            print(f"obskit doctor: importing {args.app} raised (above)", file=sys.stderr)
            return 2
        finally:
            obskit.shutdown(timeout=2.0)
    print(json.dumps(report, indent=2, default=str, sort_keys=True))
    return 1 if report["problems"] else 0


def _examine(args: argparse.Namespace) -> dict[str, Any]:
    import obskit

    app_info: dict[str, Any] | None = None
    if args.app:
        app = load_app(args.app, args.app_dir, args.factory)
        chain = find_middleware(app)
        app_info = {
            "target": args.app,
            "type": f"{type(app).__module__}.{type(app).__qualname__}",
            "obskit_middleware": " → ".join(chain) if chain else None,
        }
    else:
        obskit.init(log_stream="stderr")
    report = obskit.doctor()
    if app_info is not None:
        report["app"] = app_info
    if report.get("initialized"):
        report["checks"] = {
            "trace_endpoint": _trace_check(report, args.timeout),
            "metrics_server": _metrics_check(report, args.timeout),
        }
    report["problems"] = _problems(report)
    return report
