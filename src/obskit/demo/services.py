"""The two instrumented sample services of ``obskit demo``: ``shop`` calls ``inventory``.

Each runs in its own process under a real uvicorn server on 127.0.0.1 and is instrumented the way
a user would do it: ``obskit.init()``, ``obskit.ASGIMiddleware``, ``@obskit.red`` on a dependency
call, ``obskit.metrics_asgi_app()`` on ``/metrics``. The failures are injected here:

- ``POST /checkout`` fails (an exception, so a 500) for about one request in fifty;
  ``?orders=N`` places N orders at once (an integration's batch);
- ``inventory`` is slow (about 300 ms) for one tenant only, ``globex``;
- ``GET /admin/report`` blocks the event loop for 200 ms (a synchronous call in async code).

Options for rollouts (the canary judge's tests and the later demo story use them; without them
the services behave as described above): ``--version`` sets the service version
(``obskit_build_info``); ``--tenant-pool TENANT:SIZE[:HOLD_MS]`` sends that tenant's checkouts
through a pool of their own, ``orders-TENANT``, of SIZE connections, each held HOLD_MS (100 ms)
— a size of 1 is the injected regression: the tenant's requests wait on the pool, its p99 rises
while errors stay flat. ``--error-burst TENANT:ROUTE`` makes that tenant's requests to that route
(a template: ``/checkout``, ``/products/{product_id}``) fail with a 500, for the process' whole
life or, with ``--error-burst-switch FILE``, while FILE exists (an incident switched on and off
at run time, as the incident timeline's tests script it).

Run: ``python -m obskit.demo.services shop --port 8001 --inventory http://127.0.0.1:8002``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

SLOW_TENANT = "globex"
FAILURE_ONE_IN = 50
# How long a checkout on a tenant's own pool holds its connection (a per-tenant report query).
TENANT_POOL_HOLD_MS = 100
# A checkout places at most this many orders (``POST /checkout?orders=N``).
MAX_ORDERS = 10


def _stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: failures are reproducible from the request id."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") / 2**32


@dataclasses.dataclass(frozen=True)
class ErrorBurst:
    """Requests of ``tenant`` to ``route`` fail while the file ``switch`` exists (always, when
    there is no switch)."""

    tenant: str
    route: str
    switch: str = ""

    def hits(self, route: str, tenant: str) -> bool:
        """Whether a request of ``tenant`` to ``route`` fails now."""
        if tenant != self.tenant or route != self.route:
            return False
        return not self.switch or os.path.exists(self.switch)


def build_shop(
    inventory_url: str,
    db_path: str,
    tenant_pool: tuple[str, int, int] | None = None,
    error_burst: ErrorBurst | None = None,
) -> Any:
    """The front service: products, checkout, search, an admin report and /metrics.

    Orders go to SQLite through a small SQLAlchemy pool (two connections) from the loop's default
    executor, so the report has a connection pool and a thread pool to show saturation of.
    ``tenant_pool`` = (tenant, size, hold ms): that tenant's checkouts use a pool of their own.
    ``error_burst``: that tenant's requests to that route fail while it is on.
    """
    import httpx
    import sqlalchemy
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    import obskit

    log = obskit.get_logger("demo.shop")
    client = httpx.AsyncClient(base_url=inventory_url, timeout=10.0)
    engine = sqlalchemy.create_engine(
        f"sqlite:///{db_path}", pool_size=2, max_overflow=0, pool_timeout=10
    )
    obskit.instrument_sqlalchemy(engine, name="orders")

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def no_fsync(dbapi_connection: Any, record: Any) -> None:
        # A demo's orders need not survive a power cut: a commit that waits for the disk of a
        # busy machine would make every pool's wait a disk wait.
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS orders (request_id TEXT, tenant TEXT, reserved INTEGER)"
        )

    # The wait for a connection is a span of its own: a slow trace shows a pool wait as such.
    @obskit.red(name="orders.pool_wait")
    def acquire(pool_engine: Any) -> Any:
        return pool_engine.connect()

    def save_order(request_id: str, tenant: str, reserved: int) -> None:
        with acquire(engine) as connection:
            connection.exec_driver_sql(
                "INSERT INTO orders VALUES (?, ?, ?)", (request_id, tenant, reserved)
            )
            connection.commit()
            time.sleep(0.004)  # the write holds its connection a little, as real ones do

    pool_tenant, save_for_tenant = "", None
    if tenant_pool is not None:
        pool_tenant, size, hold_ms = tenant_pool
        tenant_engine = sqlalchemy.create_engine(
            f"sqlite:///{db_path}", pool_size=size, max_overflow=0, pool_timeout=10
        )
        obskit.instrument_sqlalchemy(tenant_engine, name=f"orders-{pool_tenant}")

        def save_for_tenant(request_id: str, tenant: str, reserved: int) -> None:
            with acquire(tenant_engine) as connection:
                connection.exec_driver_sql(
                    "INSERT INTO orders VALUES (?, ?, ?)", (request_id, tenant, reserved)
                )
                connection.commit()
                # Held after the commit (no database lock): only the pool is the bottleneck.
                time.sleep(hold_ms / 1000)

    @obskit.red(name="inventory.lookup")
    async def lookup_stock(sku: str, tenant: str) -> dict[str, Any]:
        response = await client.get(f"/stock/{sku}", headers={"x-tenant-id": tenant})
        response.raise_for_status()
        return dict(response.json())

    def burst(route: str, tenant: str) -> None:
        if error_burst is not None and error_burst.hits(route, tenant):
            log.error("orders.unavailable", reason="injected error burst", route=route)
            raise RuntimeError(f"orders backend unavailable for tenant {tenant} (injected)")

    async def product(request: Request) -> JSONResponse:
        sku = request.path_params["product_id"]
        tenant = request.headers.get("x-tenant-id", "")
        burst("/products/{product_id}", tenant)
        stock = await lookup_stock(sku, tenant)
        log.info("product.viewed", sku=sku, in_stock=stock["available"])
        return JSONResponse({"sku": sku, "stock": stock})

    async def checkout(request: Request) -> JSONResponse:
        request_id = request.headers.get("x-request-id", "")
        tenant = request.headers.get("x-tenant-id", "")
        log.debug("cart.loaded", items=3, request_id=request_id)
        burst("/checkout", tenant)
        stock = await lookup_stock("sku-checkout", tenant)
        log.debug("payment.authorizing", provider="acmepay", card_token="tok_live_123456789")
        if _stable_fraction(request_id) < 1 / FAILURE_ONE_IN:
            log.warning("payment.gateway_slow", provider="acmepay", waited_ms=2500)
            raise RuntimeError("payment gateway timed out after 2500 ms")
        save = save_for_tenant if save_for_tenant is not None and tenant == pool_tenant else None
        # A checkout of several orders (an integration's batch) places them at once: each takes
        # a connection of its own, so a pool smaller than the batch makes them queue.
        orders = _orders(request.query_params.get("orders", ""))
        if orders == 1:
            await asyncio.to_thread(save or save_order, request_id, tenant, stock["available"])
        else:
            await asyncio.gather(
                *(
                    asyncio.to_thread(
                        save or save_order, f"{request_id}-{k}", tenant, stock["available"]
                    )
                    for k in range(orders)
                )
            )
        log.info("order.placed", reserved=stock["available"])
        return JSONResponse({"ok": True})

    async def search(request: Request) -> JSONResponse:
        query = request.query_params.get("q", "")
        hits = sorted(hashlib.sha256(f"{query}{n}".encode()).hexdigest() for n in range(200))
        return JSONResponse({"q": query, "hits": hits[:5]})

    async def admin_report(request: Request) -> JSONResponse:
        time.sleep(0.2)  # the injected defect: blocking I/O inside async code lags the loop
        return JSONResponse({"report": "done"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Enough threads that requests waiting on one pool do not queue everyone's writes
        # behind them (the default is cores + 4): a pool's wait stays that pool's, even when
        # a one-connection pool has a few batches of checkouts waiting on it.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="shop")
        )
        yield
        await client.aclose()
        engine.dispose()

    app = Starlette(
        routes=[
            Route("/products/{product_id}", product),
            Route("/checkout", checkout, methods=["POST"]),
            Route("/search", search),
            Route("/admin/report", admin_report),
            Mount("/metrics", obskit.metrics_asgi_app()),
        ],
        lifespan=lifespan,
    )
    return obskit.ASGIMiddleware(app)


def build_inventory() -> Any:
    """The dependency: stock look-ups, slow for one tenant."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    import obskit

    log = obskit.get_logger("demo.inventory")

    async def stock(request: Request) -> JSONResponse:
        sku = request.path_params["sku"]
        if obskit.get_context().get("tenant_id") == SLOW_TENANT:
            log.debug("stock.cold_cache", sku=sku)
            await asyncio.sleep(0.3)
        else:
            await asyncio.sleep(0.002)
        return JSONResponse({"sku": sku, "available": 7})

    app = Starlette(
        routes=[
            Route("/stock/{sku}", stock),
            Mount("/metrics", obskit.metrics_asgi_app()),
        ]
    )
    return obskit.ASGIMiddleware(app)


def main(argv: list[str] | None = None) -> None:
    """Run one service under uvicorn on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m obskit.demo.services")
    parser.add_argument("role", choices=["shop", "inventory"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inventory", default="http://127.0.0.1:8002")
    parser.add_argument("--db", default=":memory:", help="SQLite file for the shop's orders")
    parser.add_argument("--version", default="1.0.0", help="the service version it reports")
    parser.add_argument(
        "--tenant-pool",
        type=_tenant_pool,
        default=None,
        metavar="TENANT:SIZE[:HOLD_MS]",
        help="the tenant's checkouts use a pool of their own of SIZE connections (1: regression)",
    )
    parser.add_argument(
        "--error-burst",
        type=_error_burst,
        default=None,
        metavar="TENANT:ROUTE",
        help="the tenant's requests to the route (a template, e.g. /checkout) fail with a 500",
    )
    parser.add_argument(
        "--error-burst-switch",
        default="",
        metavar="FILE",
        help="with --error-burst: fail only while FILE exists",
    )
    args = parser.parse_args(argv)
    burst = args.error_burst
    if burst is not None and args.error_burst_switch:
        burst = dataclasses.replace(burst, switch=args.error_burst_switch)

    import logging

    import uvicorn

    import obskit

    obskit.init(service_name=args.role, service_version=args.version, environment="demo")
    # As a service would: the HTTP client's wire-level debug lines are not this app's story.
    logging.getLogger("httpcore").setLevel(logging.INFO)
    app = (
        build_shop(args.inventory, args.db, args.tenant_pool, burst)
        if args.role == "shop"
        else build_inventory()
    )
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)
    finally:
        obskit.shutdown(timeout=5.0)


def _orders(text: str) -> int:
    """``?orders=N`` of a checkout: 1 to :data:`MAX_ORDERS` (anything else is one order)."""
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_ORDERS else 1


def _tenant_pool(text: str) -> tuple[str, int, int]:
    tenant, _, rest = text.partition(":")
    size, _, hold = rest.partition(":")
    hold = hold or str(TENANT_POOL_HOLD_MS)
    if not tenant or not size.isdigit() or int(size) < 1 or not hold.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected TENANT:SIZE[:HOLD_MS] (SIZE >= 1, HOLD_MS whole ms), got {text!r}"
        )
    return tenant, int(size), int(hold)


def _error_burst(text: str) -> ErrorBurst:
    tenant, _, route = text.partition(":")
    if not tenant or not route.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected TENANT:ROUTE (ROUTE a template), got {text!r}")
    return ErrorBurst(tenant, route)


if __name__ == "__main__":
    main()
