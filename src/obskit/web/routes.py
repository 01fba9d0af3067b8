"""Route templates, read from what the framework itself matched; a lookup never raises.

- Starlette / FastAPI write the matched route to ``scope["route"]``, once per routing level (a
  ``Mount`` and then the route inside it). :class:`RecordingScope` remembers each assignment so a
  mounted sub-application's route is joined to its mount's prefix. An application routed in one
  level needs no recording: :class:`RouteReader` decides which scope an application gets.
- Flask (Werkzeug) keeps the request on ``environ["werkzeug.request"]`` while it is handled; its
  ``url_rule.rule`` is read when the response starts (Flask forgets the request afterwards).
- Django stores ``request.resolver_match``; :func:`attach_django` makes a Django handler given to
  the middleware copy ``resolver_match.route`` into the scope or environ.
- Anything else (or a user) may set ``scope["obskit.route"]`` / ``environ["obskit.route"]``.

The router is never walked again: re-matching paths breaks on framework upgrades. A request no
route matched gets :data:`UNMATCHED`, so raw paths can never become metric labels.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from obskit import _guard
from obskit.web.types import Scope

__all__ = [
    "ERROR_KEY",
    "ROUTE_KEY",
    "UNMATCHED",
    "RecordingScope",
    "RouteReader",
    "asgi_route",
    "attach_django",
    "attach_flask",
    "django_route",
    "flask_route",
    "metrics_mounts",
    "request_carrier",
    "watch_django_errors",
    "wsgi_route",
]

UNMATCHED: Final = "__unmatched__"
ROUTE_KEY: Final = "obskit.route"
# An exception the framework answered with its own 500 page (it never reaches the middleware).
ERROR_KEY: Final = "obskit.error"
_MAX_ROUTE: Final = 512  # a template longer than this is not a template
_MAX_TEMPLATES: Final = 1024  # route objects whose template is remembered (per middleware)


class RecordingScope(dict[str, Any]):
    """An ASGI scope that remembers every route the framework assigns to ``scope["route"]``.

    Routers write ``scope["route"]`` and then merge the matched route's child scope with
    ``scope.update``, once per routing level; a mounted application's router then overwrites the
    mount. So the route present at each ``update`` (and the one in the merged child scope) is
    remembered there: only ``update`` is overridden, because a Python ``__setitem__`` would run
    for every key any layer stores in the scope (several per request).

    FastAPI's router enters a ``Mount`` without assigning it: it only merges the mount's child
    scope (its ``endpoint`` is the mounted app). Such endpoints are remembered too, and the
    ``Mount`` holding that very app is looked up (by identity, not by matching paths) among the
    routes of the application the middleware wraps.
    """

    # Tuples, set on the instance at the first route: most requests are routed once, and a scope
    # with nothing to remember costs no more than a plain dict copy.
    routes: tuple[Any, ...] = ()
    mounted: tuple[Any, ...] = ()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Merge like ``dict.update``, remembering the assigned route and a mount's endpoint."""
        current = dict.get(self, "route")
        if current is not None:
            self._note(current)
        if not kwargs and isinstance(other, dict):
            if "route" in other:
                self._note(other["route"])
            elif "endpoint" in other and "root_path" in other:
                self.mounted = (*self.mounted, other["endpoint"])
        dict.update(self, other, **kwargs)

    def _note(self, route: Any) -> None:
        # Routers may both assign and merge the same route: remember it once.
        routes = self.routes
        if not routes or routes[-1] is not route:
            self.routes = (*routes, route)


_mount: type | None = None


def _mount_class() -> type | None:
    # Found once Starlette is imported, then kept (a class does not change).
    global _mount
    if _mount is None:
        routing = sys.modules.get("starlette.routing")
        _mount = getattr(routing, "Mount", None) if routing is not None else None
    return _mount


def _find_mounts(app: Any, endpoints: Sequence[Any]) -> list[Any]:
    """The routes whose ``app`` is each endpoint in turn, searched level by level from ``app``."""
    found: list[Any] = []
    for endpoint in endpoints:
        for route in getattr(app, "routes", ()) or ():
            if getattr(route, "app", None) is endpoint:
                found.append(route)
                app = endpoint
                break
        else:
            return found
    return found


def _starlette_route(scope: RecordingScope, status: int, app: Any) -> str | None:
    routes = scope.routes
    final = dict.get(scope, "route")
    if not scope.mounted and (not routes or (len(routes) == 1 and routes[0] is final)):
        return _template(final, status)  # one routing level, the common case: no list to join
    mount = _mount_class()
    if scope.mounted and not any(isinstance(r, mount or ()) for r in routes):
        routes = (*_find_mounts(app, scope.mounted), *routes)
    if final is not None and (not routes or routes[-1] is not final):
        routes = (*routes, final)
    if not routes:
        return None
    parts: list[str] = []
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):  # a Host route matches on the host name and adds no path
            parts.append(path)
    if not parts:
        return None
    if mount is not None and isinstance(routes[-1], mount):
        # The mounted application did not say which of its routes ran.
        if status == 404:
            return None
        parts.append("/{path}")
    return "".join(parts) or "/"


def _plain_route(route: Any) -> bool:
    """Whether ``route``'s template is its path whatever the status (not a mount)."""
    mount = _mount_class()
    return mount is None or not isinstance(route, mount)


def _template(route: Any, status: int) -> str | None:
    """The template of one route object (the only routing level)."""
    path = getattr(route, "path", None) if route is not None else None
    if not isinstance(path, str):
        return None
    mount = _mount_class()
    if mount is not None and isinstance(route, mount):
        return None if status == 404 else path + "/{path}"
    return path or "/"


def asgi_route(scope: Mapping[str, Any], status: int, app: Any = None) -> str:
    """The route template of a finished ASGI request, or :data:`UNMATCHED`."""
    try:
        explicit = scope.get(ROUTE_KEY)
        if explicit is not None and isinstance(explicit, str):
            return explicit[:_MAX_ROUTE]
        if isinstance(scope, RecordingScope):
            route = _starlette_route(scope, status, app)
            if route is not None:
                return route[:_MAX_ROUTE]
    except Exception as exc:
        _guard.report("web.routes", exc)
    return UNMATCHED


class RouteReader:
    """How the route templates of one wrapped ASGI application are read.

    Recording (a :class:`RecordingScope`) makes every scope access of the framework a little
    slower (a dict subclass, a Python ``update``), and is needed only where a route is decided in
    more than one level. When the application's router holds no ``Mount`` or ``Host`` (looked at
    once, through wrapping middleware), the route the framework assigns last is the whole
    template, and the application gets a plain copy of the scope. Should a mount show up anyway
    (added later, or inside an included router), its request changes ``root_path``: that request
    is counted unmatched (its prefix is unknown) and recording starts for every later request.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._single_level: bool | None = None  # decided at the first request
        # id(route object) -> (the object, its template): a route's path is read once. The object
        # is held, so its id cannot be reused while it is here; bounded (routes are few).
        self._templates: dict[int, tuple[Any, str]] = {}

    def scope(self, scope: Scope) -> dict[str, Any]:
        """The copy of ``scope`` the application receives."""
        single_level = self._single_level
        if single_level is None:
            single_level = self._single_level = _routes_in_one_level(self._app)
        return dict(scope) if single_level else RecordingScope(scope)

    def route(self, inner: Mapping[str, Any], outer: Mapping[str, Any], status: int) -> str:
        """The template of the request whose application saw ``inner`` (made from ``outer``)."""
        if isinstance(inner, RecordingScope):
            return asgi_route(inner, status, self._app)
        try:
            explicit = inner.get(ROUTE_KEY)
            if explicit is not None and isinstance(explicit, str):
                return explicit[:_MAX_ROUTE]
            if inner.get("root_path") != outer.get("root_path"):
                self._single_level = False
                return UNMATCHED
            matched = inner.get("route")
            known = self._templates.get(id(matched))
            if known is not None and known[0] is matched:
                return known[1]
            route = _template(matched, status)
            if route is not None:
                route = route[:_MAX_ROUTE]
                if len(self._templates) < _MAX_TEMPLATES and _plain_route(matched):
                    self._templates[id(matched)] = (matched, route)
                return route
        except Exception as exc:
            _guard.report("web.routes", exc)
        return UNMATCHED


def metrics_mounts(app: Any) -> dict[str, str]:
    """Where a Starlette ``Mount`` of the application's router holds obskit's metrics app: the
    mount's own path (``/metrics``) -> the path the mount matches (``/metrics/``).

    Starlette answers the bare path with a redirect to the slashed one; the middleware sends it
    the slashed one instead. Looked up once, by type (the mount's ``app``), never by path.
    """
    routing = sys.modules.get("starlette.routing")
    exposition = sys.modules.get("obskit.metrics.exposition")
    metrics_app = getattr(exposition, "MetricsASGIApp", None)
    if routing is None or metrics_app is None:
        return {}
    found: dict[str, str] = {}
    try:
        for route in _router_routes(app) or ():
            if isinstance(route, routing.Mount) and isinstance(
                getattr(route, "app", None), metrics_app
            ):
                path = route.path
                if isinstance(path, str) and path and "{" not in path:
                    found[path] = path + "/"
    except Exception as exc:
        _guard.report("web.routes", exc)
    return found


def _routes_in_one_level(app: Any) -> bool:
    """Whether ``app`` is (or wraps) a Starlette router holding no ``Mount`` or ``Host`` route."""
    routing = sys.modules.get("starlette.routing")
    if routing is None:
        return False
    try:
        routes = _router_routes(app)
        return routes is not None and not any(
            isinstance(r, (routing.Mount, routing.Host)) for r in routes
        )
    except Exception as exc:
        _guard.report("web.routes", exc)
    return False


def _router_routes(app: Any) -> list[Any] | None:
    """The route list of the Starlette router that ``app`` is or wraps (through the middleware
    around it, each holding the next as ``app``; 16 deep at most), None if there is none."""
    for _ in range(16):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


def flask_route(environ: Mapping[str, Any]) -> str | None:
    """The Werkzeug/Flask rule of the request being handled (call before the response ends)."""
    try:
        request = environ.get("werkzeug.request")
        if request is None:
            return None
        rule = getattr(request, "url_rule", None)
        text = getattr(rule, "rule", None)
        return text[:_MAX_ROUTE] if isinstance(text, str) else None
    except Exception as exc:
        _guard.report("web.routes", exc)
        return None


def wsgi_route(environ: Mapping[str, Any], seen: str | None) -> str:
    """The route template of a WSGI request: set explicitly, ``seen`` at response start, or none."""
    try:
        explicit = environ.get(ROUTE_KEY)
        if isinstance(explicit, str):
            return explicit[:_MAX_ROUTE]
    except Exception as exc:
        _guard.report("web.routes", exc)
    return seen if seen is not None else UNMATCHED


def attach_django(app: Any) -> bool:
    """If ``app`` is a Django handler, make it record each request's route template; idempotent."""
    base = sys.modules.get("django.core.handlers.base")
    handler_class = getattr(base, "BaseHandler", None)
    if handler_class is None or not isinstance(app, handler_class):
        return False
    if getattr(app, "_obskit_routes", False):
        return True
    original = app.resolve_request

    def resolve_request(request: Any) -> Any:
        match = original(request)
        _record_django(request, match)
        return match

    # An attribute of this handler instance only: the class and other handlers are untouched.
    app.resolve_request = resolve_request
    app._obskit_routes = True
    watch_django_errors()
    return True


def watch_django_errors() -> None:
    """Have Django's ``got_request_exception`` signal leave the exception it answers with its
    own 500 page on the request's scope or environ (:data:`ERROR_KEY`); idempotent."""
    signals = sys.modules.get("django.core.signals")
    if signals is not None:  # once per process (the uid), whatever the number of handlers
        signals.got_request_exception.connect(
            _record_django_error, weak=False, dispatch_uid="obskit.web.routes"
        )


def django_route(match: Any) -> str | None:
    """The template of a Django ``ResolverMatch`` with a leading slash, or None."""
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return None
    # Django's patterns have no leading slash ("items/<int:pk>/"); paths do.
    return ("/" + route.lstrip("/"))[:_MAX_ROUTE]


def attach_flask(app: Any) -> bool:
    """If ``app`` is a Flask app (or its ``wsgi_app``), record the rule and exception of a request
    that fails.

    A response's rule is read when it starts (:func:`flask_route`). An exception no error handler
    answered is different: Flask may re-raise it and forgets its request before it leaves
    ``wsgi_app``. The ``got_request_exception`` signal runs first, with the request (and its
    matched rule) still current. Only failing requests pay for it: ``request_started`` cost
    every request ≈ 4 µs.
    """
    flask = sys.modules.get("flask")
    flask_class = getattr(flask, "Flask", None)
    target = getattr(app, "__self__", app)
    if flask_class is None or not isinstance(target, flask_class):
        return False
    signals = flask.signals  # type: ignore[union-attr]
    signals.got_request_exception.connect(_record_flask, sender=target, weak=False)
    return True


def _record_flask(sender: Any, exception: Any = None, **extra: Any) -> None:
    try:
        request = sys.modules["flask"].request
        environ = request.environ
        rule = request.url_rule
        if rule is not None:
            environ[ROUTE_KEY] = rule.rule[:_MAX_ROUTE]
        if isinstance(exception, BaseException):
            # Flask answers it with a 500 page unless it propagates: keep it for the span, the
            # access line and error_type, which would otherwise only say "500".
            environ[ERROR_KEY] = exception
    except Exception as exc:
        _guard.report("web.routes", exc)


def request_carrier(request: Any) -> dict[str, Any] | None:
    """Where a Django request's marks live: its ASGI scope, else its WSGI environ."""
    carrier = getattr(request, "scope", None)
    if not isinstance(carrier, dict):
        carrier = getattr(request, "environ", None)
    return carrier if isinstance(carrier, dict) else None


def _record_django_error(sender: Any, request: Any = None, **extra: Any) -> None:
    """Django answers an unhandled exception with its own 500 page: keep the exception (Django
    sends this signal while handling it, so it is the current one) for the span and the line."""
    try:
        error = sys.exc_info()[1]
        carrier = request_carrier(request) if error is not None else None
        if carrier is not None:
            carrier[ERROR_KEY] = error
    except Exception as exc:
        _guard.report("web.routes", exc)


def _record_django(request: Any, match: Any) -> None:
    try:
        route = django_route(match)
        carrier = request_carrier(request) if route is not None else None
        if carrier is not None:
            carrier[ROUTE_KEY] = route
    except Exception as exc:
        _guard.report("web.routes", exc)
