"""``obskit.DjangoMiddleware``: the web middlewares' semantics from inside Django's chain.

Some requests reach Django without passing obskit's WSGI or ASGI wrapper — above all those of
Django's test client (``django.test.Client`` and ``AsyncClient`` call the handler directly), so
an application's own tests would record nothing. Listed first in ``MIDDLEWARE``, this middleware
records those: ids, context, SERVER span, RED by ``resolver_match.route``, one access line. A
request that did come through ``obskit.WSGIMiddleware`` or ``obskit.ASGIMiddleware`` (its environ
or scope is marked) passes straight through: it is counted once, by the wrapper.

On its own under a server it works too, from the first middleware to the response Django returns;
the wrapper also sees what happens before Django and times the response's transmission, so wrap
the handler as well in ``wsgi.py`` / ``asgi.py``.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from obskit import _guard, context
from obskit.metrics.use.event_loop import ensure_monitor as ensure_loop_monitor
from obskit.web.exchange import Exchange, RequestPlan, current_plan
from obskit.web.routes import django_route, request_carrier, watch_django_errors
from obskit.web.wsgi import (
    HeaderKeys,
    ResponseBody,
    ResponseState,
    begin_exchange,
    finish_response,
)

__all__ = ["DjangoMiddleware"]

_perf = time.perf_counter
_OBSERVED = "obskit.observed"


class DjangoMiddleware:
    """Django middleware (sync and async): ``MIDDLEWARE = ["obskit.DjangoMiddleware", ...]``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._keys: HeaderKeys | None = None
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        try:
            watch_django_errors()  # names the exception behind Django's own 500 page
        except Exception as exc:
            _guard.report("web.django", exc)

    def __call__(self, request: Any) -> Any:
        """Serve one request (returns a coroutine when Django runs the chain asynchronously)."""
        if self._async:
            return self._serve_async(request)
        plan = current_plan()
        carrier = request_carrier(request)
        if plan is None or carrier is None or _OBSERVED in carrier:
            return self.get_response(request)
        carrier[_OBSERVED] = True
        # As in the WSGI middleware: the request's own copy of the thread's context.
        request_context = contextvars.copy_context()
        return request_context.run(self._serve, plan, request, carrier, request_context)

    def _serve(
        self,
        plan: RequestPlan,
        request: Any,
        carrier: dict[str, Any],
        request_context: contextvars.Context,
    ) -> Any:
        try:
            exchange = self._begin(plan, request, carrier)
        except Exception as exc:
            _guard.report("web.django", exc)
            return self.get_response(request)
        state = ResponseState()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            finish_response(exchange, carrier, state, exc)
            raise
        return self._respond(plan, exchange, request, carrier, state, response, request_context)

    async def _serve_async(self, request: Any) -> Any:
        ensure_loop_monitor()
        plan = current_plan()
        carrier = request_carrier(request)
        if plan is None or carrier is None or _OBSERVED in carrier:
            return await self.get_response(request)
        carrier[_OBSERVED] = True
        # A coroutine cannot run in a Context of its own: undo structlog's binds by value.
        snapshot = context.structlog_snapshot()
        try:
            exchange = self._begin(plan, request, carrier)
        except Exception as exc:
            _guard.report("web.django", exc)
            return await self.get_response(request)
        state = ResponseState()
        try:
            try:
                response = await self.get_response(request)
            except BaseException as exc:
                finish_response(exchange, carrier, state, exc)
                raise
            # A streamed body is iterated after this returns: in a copy of the request's context.
            return self._respond(
                plan, exchange, request, carrier, state, response, contextvars.copy_context()
            )
        finally:
            exchange.leave()  # (done already unless the body streams)
            try:
                context.restore_structlog(snapshot)
            except Exception as exc:
                _guard.report("web.django", exc)

    def _begin(self, plan: RequestPlan, request: Any, carrier: dict[str, Any]) -> Exchange:
        keys = self._keys
        if keys is None or keys.serial != plan.serial:
            keys = self._keys = HeaderKeys(plan)
        return begin_exchange(plan, keys, request.META, carrier)

    def _respond(
        self,
        plan: RequestPlan,
        exchange: Exchange,
        request: Any,
        carrier: dict[str, Any],
        state: ResponseState,
        response: Any,
        request_context: contextvars.Context,
    ) -> Any:
        """Finish now, or, for a streamed body, when it ends (wrapped like a WSGI body)."""
        try:
            state.status = int(response.status_code)
            state.first_byte = _perf()
            state.route = django_route(getattr(request, "resolver_match", None))
            echo = plan.echo_header
            if echo and not response.has_header(echo):
                response[echo] = exchange.correlation_id
            if response.streaming:
                length = response.get("Content-Length")
                if isinstance(length, str) and length.isdigit():
                    state.content_length = int(length)
                if response.is_async:
                    response.streaming_content = _AsyncBody(
                        response.streaming_content, exchange, carrier, state
                    )
                else:
                    response.streaming_content = ResponseBody(
                        response.streaming_content, exchange, carrier, state, request_context
                    )
                return response
            state.body_bytes = len(response.content)
            state.complete = True
        except Exception as exc:
            _guard.report("web.django", exc)
            if state.finished:
                return response
        state.ended = _perf()
        finish_response(exchange, carrier, state, None)
        return response


class _AsyncBody:
    """An async streamed body: finished when exhausted, failed, or closed by Django."""

    def __init__(
        self,
        inner: Any,
        exchange: Exchange,
        carrier: dict[str, Any],
        state: ResponseState,
    ) -> None:
        self._inner: AsyncIterator[bytes] = inner.__aiter__()
        self._exchange = exchange
        self._carrier = carrier
        self._state = state

    def __aiter__(self) -> _AsyncBody:
        return self

    async def __anext__(self) -> bytes:
        state = self._state
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            if not state.finished:
                state.complete = True
                self._end(None)
            raise
        except BaseException as exc:
            if not state.finished:
                self._end(exc)
            raise
        if not state.finished and state.handed(chunk):
            self._end(None)
        return chunk

    def close(self) -> None:
        """Django's ``response.close()``: record the request if nothing did yet."""
        state = self._state
        if not state.finished:
            # As for a WSGI body: only a failing write says the client went away.
            state.client_gone = isinstance(sys.exc_info()[1], OSError)
            self._end(None)

    def _end(self, error: BaseException | None) -> None:
        self._state.ended = _perf()
        finish_response(self._exchange, self._carrier, self._state, error)
