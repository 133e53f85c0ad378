"""glibc malloc thresholds for loops over arrays of a few MB (Linux; a no-op elsewhere).

A national scenario draw allocates and frees a few dozen temporary arrays of 1-10 MB
(345,000 pairs × 8 bytes).  With glibc's defaults each of them is served by ``mmap``
and page-faulted anew (the dynamic mmap threshold rises, but the heap is trimmed back
to the OS after each draw): about 9,600 page faults and 20 ms of system time per
rounding plan, a quarter of a draw's CPU time.  :func:`large_thresholds` raises the
mmap threshold to 32 MiB and the trim threshold to 64 MiB with ``mallopt``, so those
arrays reuse heap pages; the process keeps at most 64 MiB of freed memory in hand.  It
also caps glibc's arenas at :data:`ARENA_MAX` (unless ``MALLOC_ARENA_MAX`` is set): the
draw threads' temporaries then come from one heap rather than one per thread, each
keeping its own freed pages.

The same setting as :data:`studentflow.dask_client.WORKER_ENV` gives Dask workers (a
smaller trim threshold here: the run's peak memory counts). Nothing is changed when
the environment already sets ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``
(the user's choice wins) or ``STUDENTFLOW_MALLOC=default``.

:func:`trim` hands freed heap memory back to the OS at the end of a stage
(``malloc_trim``; pyarrow's pool too): after ingesting the national region the process
held 641 MB of which 270 MB were free heap pages, a floor under every later stage's
peak.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

__all__ = ["arrow_pool", "large_thresholds", "trim", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: bytes; arrays below this come from the heap (glibc's M_MMAP_THRESHOLD)
MMAP_THRESHOLD = 32 << 20
#: bytes of freed memory at the heap's top kept before trimming (M_TRIM_THRESHOLD)
TRIM_THRESHOLD = 64 << 20
#: malloc arenas (M_ARENA_MAX): threads made later share the existing heap(s) instead of
#: each growing its own (the national sweep's two draw threads: its peak 48 MiB lower)
ARENA_MAX = 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_DONE: list[bool] = []
_POOL: list[bool] = []  # arrow_pool's answer, once
_LIBC: list = []  # glibc, loaded once (a CDLL made per call is a reference cycle: garbage)


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL("libc.so.6"))
    return _LIBC[0]


def large_thresholds() -> bool:
    """Set the thresholds above once per process; True if they are in force (set now
    or before), False where glibc is absent or the environment decides (see the
    module docstring)."""
    if _DONE:
        return _DONE[0]
    ok = False
    env = os.environ
    if (sys.platform.startswith("linux") and env.get("STUDENTFLOW_MALLOC") != "default"
            and "MALLOC_MMAP_THRESHOLD_" not in env and "MALLOC_TRIM_THRESHOLD_" not in env):
        try:
            libc = _libc()
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            if ok and "MALLOC_ARENA_MAX" not in env:
                libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
        except (OSError, AttributeError):  # musl or another libc: leave it alone
            ok = False
    _DONE.append(ok)
    return ok


def arrow_pool() -> bool:
    """Arrow's buffers (pandas' Arrow strings, the CSV reader's tables) from the system
    allocator (glibc ``malloc``) instead of pyarrow's own pool (jemalloc or mimalloc),
    once per process; True if in force. pyarrow's pool kept the memory the run freed:
    the national run held 0.12 GiB more after ingest (0.40 against 0.28 GiB) and peaked
    0.12 GiB higher in the scenarios, where :func:`trim` hands glibc's free pages back.
    Left alone when ``ARROW_DEFAULT_MEMORY_POOL`` (the user's choice) or
    ``STUDENTFLOW_MALLOC=default`` is set."""
    if _POOL:
        return _POOL[0]
    ok = False
    if env_allows() and "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        try:
            import pyarrow as pa

            pa.set_memory_pool(pa.system_memory_pool())
            ok = True
        except (ImportError, AttributeError):  # no pyarrow: nothing to set
            ok = False
    _POOL.append(ok)
    return ok


def trim(collect: bool = True) -> None:
    """Collect garbage, then return free heap memory to the OS (glibc ``malloc_trim(0)``,
    and pyarrow's memory pool when pyarrow is loaded). Some 0.1 s on a national heap:
    after building the national pair table 290 MB were unreachable cycles that only a
    full collection frees (927 MB held, 634 MB after). ``collect=False`` skips the
    collection (milliseconds): for memory freed by reference counts, e.g. what worker
    threads allocated in their own malloc arenas, which the main thread cannot reuse."""
    if collect:
        gc.collect()
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        try:
            pa.default_memory_pool().release_unused()
        except Exception:  # noqa: BLE001 - an old pyarrow: nothing to release
            pass
    if sys.platform.startswith("linux") and env_allows():
        try:
            _libc().malloc_trim(0)
        except (OSError, AttributeError):
            pass


def env_allows() -> bool:
    """False when ``STUDENTFLOW_MALLOC=default`` asks to leave malloc alone."""
    return os.environ.get("STUDENTFLOW_MALLOC") != "default"
