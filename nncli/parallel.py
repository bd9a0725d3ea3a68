"""A small shared thread pool for loops whose bodies release the GIL.

numpy's array operations on large arrays and pandas' CSV parser release the GIL, so a
loop over independent row chunks, file parts or parameter slices runs on every core with
plain threads: no processes, no copies, no pickling.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4

_POOL: Optional[ThreadPoolExecutor] = None


def workers() -> int:
    """The cores this process may use, at most MAX_WORKERS, and at most OMP_NUM_THREADS when
    that is set (as `nncli sweep` sets it for each of its workers, and as schedulers do)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        n = min(n, int(limit))
    return max(1, min(n, MAX_WORKERS))


def pmap(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(x) for x in items], spread over the cores when there is more than one item.

    The calling thread does the first item itself while the pool does the others (a
    round trip through the pool costs tens of microseconds, so the caller should not sit
    idle). Results keep the order of ``items``, so a reduction over them gives the same
    bits on any number of cores. An exception in any call is raised here.
    """
    global _POOL
    items = list(items)
    if len(items) < 2 or workers() < 2:
        return [fn(x) for x in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(workers() - 1, thread_name_prefix="nncli")
    futures = [_POOL.submit(fn, x) for x in items[1:]]
    try:
        first = fn(items[0])
    finally:
        rest = [f.result() for f in futures]  # wait for all, even if the first failed
    return [first] + rest
