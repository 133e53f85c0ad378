"""Optional Dask backend: scenario × draw sweeps on a Dask cluster.

Imported only when a client or scheduler address is given
(``run_scenarios(..., client=...)``, ``run_pipeline(..., client=...)``,
``studentflow run --scheduler ADDRESS``); a run without one never imports Dask.
Install with ``pip install "studentflow[dask]"`` (dask, distributed).

What is distributed: the Monte Carlo sweep. Each scenario's work unit
(:class:`studentflow.scenario_draws.DrawWork`: its design matrix, sparse
origin × ESC-school structure, pools and capacities) is sent to every worker once with
``client.scatter``; tasks then carry only a block of coefficient vectors and their
seeds. Results are gathered back in (scenario, draw) order and summarised exactly as in
the single-process run. Per-draw seeds come from :func:`studentflow.scenario_draws.draw_seed`
(the run's seed and the draw number), never from the scheduler, so the result is
identical to the single-process run with the same seed.
"""

from __future__ import annotations

import numpy as np

from studentflow.dask_client import close, connect, resolve, worker_count
from studentflow.scenario_draws import DrawWork, simulate_draws

__all__ = ["connect", "close", "run_draws"]


def _blocks(n: int, workers: int, per_worker: int = 4) -> list[range]:
    """Split draws 0..n-1 into contiguous blocks, about ``per_worker`` per worker."""
    k = max(1, min(n, workers * per_worker))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_draws(client, works: list[DrawWork], betas: np.ndarray, seeds: list[int], *, allocator=None,
              progress: bool = False) -> list[list]:
    """Run every (scenario, draw) of a sweep on a Dask cluster.

    Parameters
    ----------
    client : dask.distributed.Client or str
        Client, or a scheduler address for :func:`connect` (closed afterwards).
    works : list of DrawWork
        One per scenario.
    betas : numpy.ndarray
        Coefficient vectors, draws × parameters.
    seeds : list of int
        Seed of each draw.
    allocator : callable, optional
        Picklable replacement for :func:`studentflow.allocation.allocate`.
    progress : bool
        tqdm bar over draws as blocks finish.

    Returns
    -------
    list of list of DrawOutcome
        ``[scenario][draw]``, the same as the single-process loop.
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    client, owned = resolve(client)
    try:
        n = len(betas)
        workers = worker_count(client)
        blocks = _blocks(n, workers)
        futures = []  # [scenario][block]
        for work in works:
            shared = client.scatter(work, broadcast=True)
            futures.append([
                client.submit(simulate_draws, shared, betas[b.start:b.stop], list(b),
                              [seeds[d] for d in b], allocator, pure=False)
                for b in blocks
            ])
        flat = [f for row in futures for f in row]
        with tqdm(total=n * len(works), desc="scenario draws (dask)", unit="draw", disable=not progress) as bar:
            sizes = {f.key: len(b) for row in futures for f, b in zip(row, blocks)}
            for f in as_completed(flat):
                bar.update(sizes[f.key])
        results = client.gather(futures)
        return [[o for block in row for o in block] for row in results]
    finally:
        if owned:
            close(client)
