"""The demo's load: bounded, mixed, several tenants, every request with its own id.

The plan is drawn from a seeded random generator so two runs send the same requests. The run is
bounded twice: by the number of requests and by a deadline.

:func:`drive` is a closed loop (a fixed number of clients, each sending its next request when the
previous one answered). :func:`drive_open` is what the demo's rollout uses: requests arrive at a
fixed rate whatever the servers do (as users do), each to the instance a :class:`Router` picks,
with a cap on requests in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

TENANTS = (("acme", 0.35), ("initech", 0.25), ("globex", 0.15), ("umbrella", 0.15), ("hooli", 0.10))
# Share of product views and of checkouts (the rest: searches).
ROUTE_MIX = (0.50, 0.35)
TENANT_ROUTE_MIX = {"initech": (0.40, 0.40)}
# initech's order integration checks out this many orders in one request (``?orders=N``): the
# shop places them at once, each on a connection of its own.
ORDERS = {"initech": 4}
# Several requests sent at the same instant to the same instance (none in the demo's plan).
BATCHES: dict[str, int] = {}


@dataclasses.dataclass(frozen=True)
class Planned:
    """One request to send."""

    request_id: str
    method: str
    path: str
    route: str
    tenant: str
    batch: str = ""


@dataclasses.dataclass
class Outcome:
    """What happened to one request."""

    request_id: str
    method: str
    path: str
    route: str
    tenant: str
    status: int
    seconds: float
    echoed_id: str | None
    retried: bool = False
    instance: str = ""
    sent_at: float = 0.0


def plan(count: int, seed: int = 7) -> list[Planned]:
    """``count`` requests: mostly product views and checkouts, some searches, rare admin reports."""
    rng = random.Random(seed)
    names = [name for name, _ in TENANTS]
    weights = [weight for _, weight in TENANTS]
    requests = []
    for n in range(count):
        tenant = rng.choices(names, weights)[0]
        request_id = f"demo-{n:05d}"
        pick = rng.random()
        products, checkouts = TENANT_ROUTE_MIX.get(tenant, ROUTE_MIX)
        if n % 150 == 75:
            method, path, route = "GET", "/admin/report", "/admin/report"
        elif pick < products:
            sku = f"sku-{rng.randrange(1000):04d}"
            method, path, route = "GET", f"/products/{sku}", "/products/{product_id}"
        elif pick < products + checkouts:
            orders = ORDERS.get(tenant, 1)
            path = "/checkout" if orders == 1 else f"/checkout?orders={orders}"
            method, route = "POST", "/checkout"
        else:
            method, path, route = "GET", f"/search?q=term{rng.randrange(50)}", "/search"
        size = BATCHES.get(tenant, 1) if route == "/checkout" else 1
        for k in range(size):
            item_id = request_id if size == 1 else f"{request_id}-{k}"
            batch = request_id if size > 1 else ""
            requests.append(Planned(item_id, method, path, route, tenant, batch))
    return requests


async def drive(
    base_url: str,
    requests: list[Planned],
    concurrency: int = 16,
    deadline_s: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Outcome]:
    """Send ``requests`` with at most ``concurrency`` in flight; stop at the deadline."""
    import httpx

    outcomes: list[Outcome] = []
    queue: asyncio.Queue[Planned] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    stop_at = time.monotonic() + deadline_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=15.0, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                headers = {"x-request-id": item.request_id, "x-tenant-id": item.tenant}
                started = time.perf_counter()
                status, echoed, retried = 0, None, False
                for attempt in range(2):
                    try:
                        response = await client.request(item.method, item.path, headers=headers)
                        status, echoed = response.status_code, response.headers.get("x-request-id")
                        break
                    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                        # uvicorn closes a keep-alive connection after an application exception;
                        # a request sent on it in that instant never reached the app: resend once.
                        retried = attempt == 0
                    except httpx.HTTPError:
                        break
                outcomes.append(
                    Outcome(
                        item.request_id,
                        item.method,
                        item.path,
                        item.route,
                        item.tenant,
                        status,
                        time.perf_counter() - started,
                        echoed,
                        retried,
                    )
                )
                if progress is not None:
                    progress(len(outcomes), len(requests))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


class Router:
    """Which instance serves the next request: weights a rollout changes as it goes."""

    def __init__(self, urls: dict[str, str], weights: dict[str, float], seed: int = 3) -> None:
        self.urls = dict(urls)
        self.weights = dict(weights)
        self._rng = random.Random(seed)
        self.in_flight: dict[str, int] = {}

    def set(self, weights: dict[str, float], urls: dict[str, str] | None = None) -> None:
        """New weights (and URLs for new instances); an instance at 0 gets no new request."""
        self.urls.update(urls or {})
        self.weights = dict(weights)

    def pick(self) -> str:
        """An instance name, drawn by weight."""
        names = [name for name, weight in self.weights.items() if weight > 0]
        return self._rng.choices(names, [self.weights[n] for n in names])[0]

    async def drained(self, name: str, timeout: float) -> bool:
        """Wait until ``name`` has no request in flight (True) or ``timeout`` passed."""
        stop_at = time.monotonic() + timeout
        while self.in_flight.get(name, 0) > 0 and time.monotonic() < stop_at:
            await asyncio.sleep(0.05)
        return self.in_flight.get(name, 0) == 0


async def _send(
    client: Any, router: Router, item: Planned, origin: float, instance: str
) -> Outcome:
    import httpx

    router.in_flight[instance] = router.in_flight.get(instance, 0) + 1
    headers = {"x-request-id": item.request_id, "x-tenant-id": item.tenant}
    sent_at = time.monotonic() - origin
    started = time.perf_counter()
    status, echoed, retried = 0, None, False
    try:
        for attempt in range(2):
            try:
                url = router.urls[instance] + item.path
                response = await client.request(item.method, url, headers=headers)
                status, echoed = response.status_code, response.headers.get("x-request-id")
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # As in drive(): a request sent on a connection the server just closed.
                retried = attempt == 0
            except httpx.HTTPError:
                break
    finally:
        router.in_flight[instance] -= 1
    seconds = time.perf_counter() - started
    return Outcome(
        item.request_id,
        item.method,
        item.path,
        item.route,
        item.tenant,
        status,
        seconds,
        echoed,
        retried,
        instance,
        round(sent_at, 4),
    )


async def drive_open(
    router: Router,
    requests: Iterable[Planned],
    rate: float,
    stop: asyncio.Event,
    *,
    deadline_s: float,
    max_in_flight: int = 128,
    seed: int = 5,
) -> list[Outcome]:
    """Send ``requests`` as Poisson arrivals at ``rate`` a second until ``stop`` is set, the
    plan runs out or ``deadline_s`` passes; at most ``max_in_flight`` wait for an answer (a
    request beyond that waits to be sent). Every request sent is answered before returning."""
    import httpx

    rng = random.Random(seed)
    origin = time.monotonic()
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    slots = asyncio.Semaphore(max_in_flight)
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()

    async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:

        async def one(item: Planned, instance: str) -> None:
            try:
                outcomes.append(await _send(client, router, item, origin, instance))
            finally:
                slots.release()

        due = origin
        batch, instance = "", ""
        for item in requests:
            if not item.batch or item.batch != batch:
                due += rng.expovariate(rate)  # a batch's requests arrive together
                instance = router.pick()
            batch = item.batch
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
            if stop.is_set() or time.monotonic() - origin > deadline_s:
                break
            await slots.acquire()
            task = asyncio.create_task(one(item, instance))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=20.0)
    return sorted(outcomes, key=lambda o: o.sent_at)
