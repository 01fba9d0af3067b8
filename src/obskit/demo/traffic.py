"""The demo's load: bounded, mixed, several tenants, every request with its own id.

The plan is drawn from a seeded random generator so two runs send the same requests. The run is
bounded twice: by the number of requests and by a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable

TENANTS = (("acme", 0.35), ("initech", 0.25), ("globex", 0.15), ("umbrella", 0.15), ("hooli", 0.10))


@dataclasses.dataclass(frozen=True)
class Planned:
    """One request to send."""

    request_id: str
    method: str
    path: str
    route: str
    tenant: str


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
        if n % 150 == 75:
            method, path, route = "GET", "/admin/report", "/admin/report"
        elif pick < 0.50:
            sku = f"sku-{rng.randrange(1000):04d}"
            method, path, route = "GET", f"/products/{sku}", "/products/{product_id}"
        elif pick < 0.85:
            method, path, route = "POST", "/checkout", "/checkout"
        else:
            method, path, route = "GET", f"/search?q=term{rng.randrange(50)}", "/search"
        requests.append(Planned(request_id, method, path, route, tenant))
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
