"""The web part of ``init()``: outbound propagation on, servers' access logs handed over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from obskit.web.access_log import restore_server_access_logs

if TYPE_CHECKING:
    from obskit._runtime import Runtime

__all__ = ["WebComponent", "build"]


class WebComponent:
    """Undoes what the web part changed outside obskit when obskit shuts down."""

    name = "web"

    def __init__(self, uninstall_outbound: object = None) -> None:
        self._uninstall = uninstall_outbound

    def after_fork_in_child(self) -> None:
        """Nothing per process: the middleware rebuilds its plan from the live runtime."""

    def shutdown(self, timeout: float) -> None:
        """Give the servers their access logs back and remove outbound instrumentation."""
        restore_server_access_logs()
        uninstall = self._uninstall
        if callable(uninstall):
            uninstall()


def build(runtime: Runtime) -> WebComponent:
    """Wire the web part for ``runtime`` (called by ``init()``)."""
    from obskit.web import outbound

    return WebComponent(outbound.install(runtime))
