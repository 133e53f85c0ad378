"""Dask client handling shared by every stage that can run on a cluster.

Stage-neutral on purpose: ingest (learner-level files), distances (origin blocks) and
the scenario sweep all take a ``client=`` that may be a
:class:`dask.distributed.Client` or a scheduler address string. This module imports
Dask only inside its functions, so importing it costs nothing without Dask.
"""

from __future__ import annotations

__all__ = ["connect", "close", "resolve", "worker_count", "local_cluster", "WORKER_ENV_UNSET"]

#: Environment variables that distributed's nanny sets in worker processes by default and
#: that studentflow's local clusters leave unset. ``MALLOC_TRIM_THRESHOLD_=65536`` turns
#: off glibc's dynamic mmap threshold, so every temporary numpy array of a scenario draw
#: (a few MB each) is mmapped and page-faulted anew: a national draw ran 2.8x slower in a
#: worker than in the client (7.0 s vs 2.5 s for 50 draws; the same 7.0 s in a plain
#: process started with that variable). Workers of a cluster started elsewhere should be
#: started without it (see docs/scaling.md).
WORKER_ENV_UNSET = ("MALLOC_TRIM_THRESHOLD_",)


def local_cluster(n_workers: int = 2, **kwargs):
    """A :class:`dask.distributed.LocalCluster` of single-threaded worker processes.

    As ``LocalCluster(n_workers, threads_per_worker=1, processes=True,
    dashboard_address=None, **kwargs)``, but its workers start without
    :data:`WORKER_ENV_UNSET` (numpy-heavy draws run at in-process speed).

    Parameters
    ----------
    n_workers : int
        Worker processes (one thread each).
    **kwargs
        Passed to ``LocalCluster`` (they override the defaults above).
    """
    import dask
    from dask.distributed import LocalCluster

    opts = dict(n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=None)
    opts.update(kwargs)
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": None for k in WORKER_ENV_UNSET}):
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
        return connect(client), True
    return client, False


def worker_count(client) -> int:
    """Number of workers the client's scheduler knows of (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))
