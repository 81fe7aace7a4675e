"""Shared plumbing of the bench: paths, the error it stops with, and small HTTP helpers."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RULESETS = ROOT / "rulesets"
RULESET_NAME = "expense-approval"
RULESET_FILE = RULESETS / f"{RULESET_NAME}.yaml"
LOOPBACK = "127.0.0.1"


class BenchError(RuntimeError):
    """Something the bench needs is missing or broke; the message says what to do."""


def http(method: str, url: str, *, token: str | None = None, body: Any = None,
         timeout: float = 120.0) -> tuple[int, bytes, float]:
    """One request: (status, body, seconds). Error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    return status, payload, time.perf_counter() - start


SLOW_S = 1.0
VERY_SLOW_S = 5.0


def timed_get(url: str, *, token: str | None, repeats: int, budget_s: float,
              ) -> tuple[dict[str, Any], bytes]:
    """GET ``url`` once to warm up, then up to ``repeats`` times within ``budget_s``: the
    best and median milliseconds, the statuses seen, and the first body. A first call
    slower than SLOW_S is itself a sample and is repeated once only (a cold cache
    cannot hide in seconds, and slow calls must not eat the run's time); one slower than
    VERY_SLOW_S is the only sample."""
    statuses: list[int] = []
    times: list[float] = []
    status, body, first = http("GET", url, token=token)
    statuses.append(status)
    if first > SLOW_S:
        times.append(first * 1000)
        repeats = 0 if first > VERY_SLOW_S else 1
    deadline = time.monotonic() + budget_s
    for _ in range(repeats):
        if time.monotonic() > deadline:
            break
        status, _, seconds = http("GET", url, token=token)
        statuses.append(status)
        times.append(seconds * 1000)
    if not times:
        times = [first * 1000]
    times.sort()
    return {"best_ms": round(times[0], 1), "median_ms": round(times[len(times) // 2], 1),
            "first_ms": round(first * 1000, 1), "samples": len(times),
            "statuses": sorted(set(statuses))}, body


def log(message: str) -> None:
    """A progress line on stderr, with the time of day."""
    print(f"bench {time.strftime('%H:%M:%S')}  {message}", file=sys.stderr, flush=True)
