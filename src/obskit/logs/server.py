"""The servers' own log lines from their parent processes: JSON through obskit's chain.

(A failed request's line from the server's worker is handled in :mod:`obskit.logs.server_errors`.)

uvicorn's supervisor (``--workers``) and gunicorn's arbiter never import the application, so
``obskit.init()`` never runs there and their lines stay plain text. Both servers take a logging
configuration file; :data:`LOG_CONFIG_PATH` is one that routes every logger through obskit's
chain, configured from the environment (``OTEL_SERVICE_NAME``, ``OBSKIT_*``)::

    uvicorn app:app --workers 2 --log-config "$(python -m obskit.logs.server)"
    gunicorn app:app -w 3 --log-config-json "$(python -m obskit.logs.server)"

(``python -m obskit.logs.server`` prints the file's path; :func:`log_config` is the same
configuration as a dict, for ``uvicorn.run(..., log_config=...)`` or gunicorn's ``logconfig_dict``.)
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Final

from obskit import _live
from obskit._config import load_settings
from obskit.logs import setup as log_setup

__all__ = ["LOG_CONFIG_PATH", "handler", "log_config"]

#: A logging configuration file (dictConfig JSON) for uvicorn's ``--log-config`` and gunicorn's
#: ``--log-config-json``.
LOG_CONFIG_PATH: Final = os.path.join(os.path.dirname(__file__), "server_logging.json")

_LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"obskit": {"()": "obskit.logs.server.handler"}},
    "root": {"handlers": ["obskit"]},
    "loggers": {
        name: {"handlers": [], "propagate": True}
        for name in (
            "uvicorn",
            "uvicorn.error",
            "uvicorn.access",
            "gunicorn.error",
            "gunicorn.access",
        )
    },
}


def log_config() -> dict[str, Any]:
    """The servers' logging configuration (what :data:`LOG_CONFIG_PATH` holds) as a new dict."""
    return copy.deepcopy(_LOG_CONFIG)


def handler() -> logging.Handler:
    """The ``logging.config`` factory: obskit's stdlib bridge, with obskit's log chain configured
    in this process (from the live ``init()``, or else from the environment)."""
    runtime = _live.current()
    if runtime is None or runtime.disabled:
        # A bad environment fails the server's start here, with the setting named.
        log_setup.configure(load_settings({}))
    return log_setup.bridge()


if __name__ == "__main__":
    print(LOG_CONFIG_PATH)
