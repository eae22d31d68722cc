"""Timing and memory: wall-clock time of a fixed workload, single-request latency, peak RSS.

A benchmark never asserts a time; these functions only report what they saw.
"""

import ctypes
import ctypes.util
import gc
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable


def rss_bytes() -> int:
    """The resident set size of this process now."""
    try:
        with open("/proc/self/statm") as statm:  # Linux: pages resident is field 2 (cheap enough to sample)
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the best we have: the all-time peak
        return peak if sys.platform == "darwin" else peak * 1024


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def release_memory() -> None:
    """Free what the last system left behind and give it back to the OS, so the next one's RSS is its own.

    glibc keeps freed blocks for reuse; without `malloc_trim` a peer measured after a big model would
    look smaller than it is (it reuses the freed pages) and the process RSS would only ever grow.
    What survives the collection (modules, tokenizers, the results so far) is frozen: the collector
    never scans it again, so the next call only looks at what the next system allocated.
    """
    gc.collect()
    gc.freeze()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


class PeakRSS:
    """Sample the RSS every `interval` seconds in a thread while the block runs; keep the highest.

    ru_maxrss cannot serve here: it is the peak of the whole process, and the peers run in the
    same process one after the other. Sampling misses spikes shorter than the interval.
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRSS":
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def timed(call: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile (0.95 for p95), interpolated like numpy's default."""
    if not values:
        raise ValueError("percentile of no values")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def latencies(call_one: Callable[[object], object], items: list) -> list[float]:
    """Seconds of each single request, one item at a time."""
    return [timed(lambda item=item: call_one(item))[0] for item in items]
