"""Dask backend of :func:`studentflow.geo.distances.road_distances`: origin blocks as tasks.

Used only when ``road_distances(..., client=...)`` (or
:func:`studentflow.pairs.bundle_distances`) receives a Dask client; importing
:mod:`studentflow.geo.distances` never imports this module or Dask.
:func:`run_blocks` runs the block function that the single-process loop also runs
(:func:`studentflow.geo.distances._gc_block`, :func:`studentflow.geo.network._network_block`);
the plan (graph, destination arrays, snap distances) is scattered to every worker once
(``broadcast=True``), each task carries only its block bounds ``(s, e)``, and the
results, collected as blocks finish (each then freed on its worker), are put back in
block order, so concatenating them gives the single-process arrays bit for bit.
Projection on the workers (dask-geopandas) is :func:`studentflow.geo.network.projector`.

Matrix distances stay in the calling process: the memory-mapped file need not be
visible to the workers, and reading it is I/O, not computation.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["run_blocks"]


def run_blocks(client, block: Callable, plan: dict, bounds: list[tuple[int, int]]) -> list:
    """``[block(plan, s, e) for s, e in bounds]`` as Dask tasks, results in block order.

    Parameters
    ----------
    client : dask.distributed.Client
        Where the tasks run.
    block : callable
        Importable module-level function ``block(plan, s, e)`` (pickled by reference).
    plan : dict
        Read-only inputs of every block (arrays, sparse graph, KD-tree); sent to each
        worker once.
    bounds : list of (int, int)
        Origin block bounds; a task carries only its pair.

    Returns
    -------
    list
        One result per block, in the order of ``bounds``.
    """
    from dask.distributed import as_completed

    [plan_f] = client.scatter([plan], broadcast=True, hash=False)
    futures = [client.submit(block, plan_f, int(s), int(e), pure=False) for s, e in bounds]
    position = {f.key: k for k, f in enumerate(futures)}
    parts: list = [None] * len(futures)
    try:  # collect as blocks finish and free each on its worker: not every block held at once
        for fut, result in as_completed(futures, with_results=True):
            parts[position[fut.key]] = result
            fut.release()
    finally:
        for f in futures:
            f.release()
        plan_f.release()
    return parts


#END
