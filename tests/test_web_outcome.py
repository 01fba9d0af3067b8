"""The one rule both middlewares record a finished exchange by (obskit.web.outcome)."""

from __future__ import annotations

import asyncio

import pytest

from obskit.web.outcome import outcome
from obskit.web.routes import ERROR_KEY

_BOOM = LookupError("boom")


@pytest.mark.parametrize(
    ("status", "complete", "client_gone", "error", "expected"),
    [
        # complete and fine
        (200, True, False, None, (200, None, "")),
        (404, True, True, None, (404, None, "")),  # the client left after the last byte
        # 5xx without an exception: the status names it
        (503, True, False, None, (503, None, "503")),
        # the client left before the last byte: 499, whatever the app raised in reaction
        (200, False, True, None, (499, None, "")),
        (200, False, True, _BOOM, (499, None, "")),
        (200, False, False, asyncio.CancelledError(), (499, None, "")),
        (0, False, False, BrokenPipeError(), (499, None, "")),
        # an exception before the response completed names error_type; never started: 500
        (0, False, False, _BOOM, (500, _BOOM, "LookupError")),
        (200, False, False, _BOOM, (200, _BOOM, "LookupError")),
        # an exception after a complete, successful response leaves it successful
        (200, True, False, _BOOM, (200, _BOOM, "")),
        (500, True, False, _BOOM, (500, _BOOM, "LookupError")),
        # returned without completing, client still there: its status, or 500 if none
        (200, False, False, None, (200, None, "")),
        (0, False, False, None, (500, None, "500")),
    ],
)
def test_outcome_rules(
    status: int,
    complete: bool,
    client_gone: bool,
    error: BaseException | None,
    expected: tuple[int, BaseException | None, str],
) -> None:
    """Each row: what the middleware observed, and the status, exception and error_type kept."""
    assert expected == outcome(status, complete, client_gone, error, {})


def test_exception_a_framework_answered_names_its_5xx() -> None:
    """An exception the framework answered with its own 500 page is the request's exception."""
    carrier = {ERROR_KEY: _BOOM}
    assert (500, _BOOM, "LookupError") == outcome(500, True, False, None, carrier)
    assert (404, None, "") == outcome(404, True, False, None, carrier)  # not a 5xx: ignored
