"""Dask client handling shared by every stage that can run on a cluster.

Stage-neutral on purpose: ingest (learner-level files), distances (origin blocks) and
the scenario sweep all take a ``client=`` that may be a
:class:`dask.distributed.Client` or a scheduler address string. This module imports
Dask only inside its functions, so importing it costs nothing without Dask.
"""

from __future__ import annotations

__all__ = ["connect", "close", "resolve", "worker_count"]


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
    from dask.distributed import Client, LocalCluster

    address = str(address).strip()
    if not address:
        raise ValueError("scheduler address is empty (give e.g. tcp://host:8786 or local:2)")
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2] or "2"
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"scheduler {address!r}: 'local:N' needs N >= 1 workers")
        cluster = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                               dashboard_address=None)
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
