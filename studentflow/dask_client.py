"""Dask client handling shared by every stage that can run on a cluster.

Stage-neutral on purpose: ingest (learner-level files), distances (origin blocks) and
the scenario sweep all take a ``client=`` that may be a
:class:`dask.distributed.Client` or a scheduler address string. This module imports
Dask only inside its functions, so importing it costs nothing without Dask.
"""

from __future__ import annotations

__all__ = ["connect", "close", "resolve", "worker_count", "local_cluster", "slow_malloc_workers",
           "WORKER_ENV", "WORKER_ENV_ADVICE"]

#: glibc settings for worker processes, set before they start. distributed's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` by default, which fixes glibc's mmap threshold at
#: 128 KiB, so every temporary numpy array of a scenario draw (a few MB each) is mmapped
#: and page-faulted anew: a national draw ran 2.8x slower in a worker than in the client
#: (7.0 s vs 2.5 s for 50 draws; the same 7.0 s in a plain process started with that
#: variable). Raising both thresholds (the mmap one to glibc's own dynamic maximum,
#: 32 MiB) restores in-process speed. studentflow's local clusters set these; workers of
#: a cluster started elsewhere need them in their environment (docs/scaling.md).
WORKER_ENV: dict[str, str] = {"MALLOC_TRIM_THRESHOLD_": "268435456", "MALLOC_MMAP_THRESHOLD_": "33554432"}
#: The same, as shell assignments.
WORKER_ENV_ADVICE = " ".join(f"{k}={v}" for k, v in WORKER_ENV.items())
_SMALL_BYTES = 4 * 2**20  # mmap threshold below this: MB-sized arrays are mmapped each time


def _worker_malloc_env() -> dict:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}


def slow_malloc_workers(client) -> list[str]:
    """Workers whose glibc settings make numpy temporaries slow (fixed small mmap threshold).

    A worker is slow when ``MALLOC_TRIM_THRESHOLD_`` is set (which fixes glibc's mmap
    threshold) and ``MALLOC_MMAP_THRESHOLD_`` is unset or under 4 MiB.

    Returns
    -------
    list of str
        Their addresses (empty when none, or when the workers cannot be asked).
    """
    try:
        envs = client.run(_worker_malloc_env)
    except Exception:  # a client that cannot run functions on workers: nothing to say
        return []
    slow = []
    for addr, env in envs.items():
        mmap = env.get("MALLOC_MMAP_THRESHOLD_")
        small = mmap is None or not mmap.isdigit() or int(mmap) < _SMALL_BYTES
        if env.get("MALLOC_TRIM_THRESHOLD_") is not None and small:
            slow.append(addr)
    return sorted(slow)


def local_cluster(n_workers: int = 2, **kwargs):
    """A :class:`dask.distributed.LocalCluster` of single-threaded worker processes.

    As ``LocalCluster(n_workers, threads_per_worker=1, processes=True,
    dashboard_address=None, **kwargs)``, but its workers start with :data:`WORKER_ENV`
    (numpy-heavy draws run at in-process speed). Like any nanny's pre-spawn settings,
    these are also left in this process's ``os.environ`` (harmless: they only raise
    glibc's thresholds for processes started later).

    Parameters
    ----------
    n_workers : int
        Worker processes (one thread each).
    **kwargs
        Passed to ``LocalCluster`` (they override the defaults above).
    """
    import os

    import dask
    from dask.distributed import LocalCluster

    opts = dict(n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=None)
    opts.update(kwargs)
    # a nanny takes a value already in os.environ over its config, and an earlier plain
    # LocalCluster leaves distributed's 65536 there: set both
    os.environ.update(WORKER_ENV)
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}):
        return LocalCluster(**opts)


def connect(address: str, *, timeout: float = 30.0):
    """A :class:`dask.distributed.Client` for ``address``.

    Parameters
    ----------
    address : str
        Scheduler address (``"tcp://host:8786"``, ``"host:8786"``), or ``"local"`` /
        ``"local:N"`` to start an in-machine cluster of N single-threaded worker
        processes (default 2).
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    dask.distributed.Client
        Close it (``client.close()``) when done; a local cluster closes with it.

    Raises
    ------
    ValueError
        ``address`` is empty or the scheduler cannot be reached within ``timeout``.
    """
    from dask.distributed import Client

    address = str(address).strip()
    if not address:
        raise ValueError("scheduler address is empty (give e.g. tcp://host:8786 or local:2)")
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2] or "2"
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"scheduler {address!r}: 'local:N' needs N >= 1 workers")
        cluster = local_cluster(int(n))
        client = Client(cluster)
        client._studentflow_cluster = cluster  # closed by close()
        return client
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"scheduler {address!r}: cannot connect within {timeout:g} s ({exc})") from exc


def close(client) -> None:
    """Close a client from :func:`connect` (and the local cluster it started, if any)."""
    cluster = getattr(client, "_studentflow_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def resolve(client):
    """``(client, owned)``: a Client as given, or one connected from an address string.

    ``owned`` is True when this call connected it, so the caller must :func:`close` it.
    """
    if isinstance(client, str):
        client, owned = connect(client), True
    else:
        owned = False
    _warn_slow_workers(client)
    return client, owned


_WARNED: set = set()


def _warn_slow_workers(client) -> None:
    """Warn once per scheduler when its workers run with a small fixed mmap threshold."""
    import warnings

    key = getattr(getattr(client, "scheduler", None), "address", id(client))
    if key in _WARNED:
        return
    _WARNED.add(key)
    slow = slow_malloc_workers(client)
    if slow:
        warnings.warn(f"{len(slow)} Dask worker(s) run with MALLOC_TRIM_THRESHOLD_ set and a small mmap "
                      f"threshold (distributed's default): numpy-heavy scenario draws run about 3x slower "
                      f"there. Start workers with {WORKER_ENV_ADVICE} in their environment "
                      f"(docs/scaling.md).", RuntimeWarning, stacklevel=3)


def worker_count(client) -> int:
    """Number of workers the client's scheduler knows of (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))
