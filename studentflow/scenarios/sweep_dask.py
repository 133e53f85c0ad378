"""Optional Dask backend: scenario × draw sweeps on a Dask cluster.

Imported only when a client or scheduler address is given
(``run_scenarios(..., client=...)``, ``run_pipeline(..., client=...)``,
``studentflow run --scheduler ADDRESS``); a run without one never imports Dask.
Install with ``pip install "studentflow[dask]"`` (dask, distributed).

What is distributed: the Monte Carlo sweep (:func:`run_sweep`). Each scenario's work
unit (:class:`studentflow.scenarios.draws.DrawWork`: its design matrix, sparse
origin × ESC-school structure, pools and capacities) is built in the client only when
its turn comes, sent to every worker once with ``client.scatter``; tasks then carry only
a block of coefficient vectors and their seeds. At most ``in_flight`` scenarios are on
the cluster at once: when the oldest one's blocks are gathered, its work unit and
results are released on the workers before the next scenario is sent, so neither the
client nor a worker ever holds every scenario of a sweep of hundreds. Results come back
in scenario order and are summarised exactly as in the single-process run. Per-draw seeds come from :func:`studentflow.scenarios.draws.draw_seed`
(the run's seed and the draw number), never from the scheduler, so the result is
identical to the single-process run with the same seed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from studentflow.dask_client import close, connect, resolve, worker_count
from studentflow.scenarios.draws import simulate_draws

__all__ = ["connect", "close", "run_sweep"]


def _blocks(n: int, workers: int, per_worker: int = 4) -> list[range]:
    """Split draws 0..n-1 into contiguous blocks, about ``per_worker`` per worker."""
    k = max(1, min(n, workers * per_worker))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_sweep(client, make, order, betas: np.ndarray, seeds: list[int], *, allocator=None,
              progress: bool = False, in_flight: int = 2):
    """Run a sweep's scenarios on a Dask cluster, at most ``in_flight`` at a time.

    Parameters
    ----------
    client : dask.distributed.Client or str
        Client, or a scheduler address for :func:`connect` (closed when the generator
        finishes or is closed).
    make : callable
        ``make(i) -> (DrawWork, meta)``: builds scenario ``i``'s work unit when its turn
        comes; ``meta`` (anything small) is handed back with its outcomes.
    order : sequence of int
        Scenario numbers in the order to run them.
    betas : numpy.ndarray
        Coefficient vectors, draws × parameters.
    seeds : list of int
        Seed of each draw.
    allocator : callable, optional
        Picklable replacement for :func:`studentflow.allocation.solve.allocate`.
    progress : bool
        tqdm bar over draws as scenarios finish.
    in_flight : int
        Scenarios on the cluster at once (>= 1): scenario ``k + in_flight`` is built and
        sent only after scenario ``k`` has been gathered and released.

    Yields
    ------
    tuple
        ``(i, meta, outcomes)`` in ``order``, ``outcomes`` the list of DrawOutcome of
        draws 0..n-1, the same as :func:`studentflow.scenarios.draws.simulate_draws` gives
        here.
    """
    from tqdm.auto import tqdm

    if int(in_flight) < 1:
        raise ValueError(f"run_sweep: in_flight must be >= 1, got {in_flight!r}")
    client, owned = resolve(client)
    pending = deque()  # (i, meta, scattered work unit, block futures)
    try:
        n = len(betas)
        blocks = _blocks(n, worker_count(client))
        with tqdm(total=n * len(order), desc="scenario draws (dask)", unit="draw", disable=not progress) as bar:
            todo = iter(order)
            while True:
                while len(pending) < in_flight:
                    i = next(todo, None)
                    if i is None:
                        break
                    work, meta = make(i)
                    shared = client.scatter(work, broadcast=True, hash=False)
                    del work
                    futures = [client.submit(simulate_draws, shared, betas[b.start:b.stop], list(b),
                                             [seeds[d] for d in b], allocator, pure=False)
                               for b in blocks]
                    pending.append((i, meta, shared, futures))
                if not pending:
                    break
                i, meta, shared, futures = pending.popleft()
                outs = [o for block in client.gather(futures) for o in block]
                client.cancel([*futures, shared])  # free the work unit and results on the workers
                del shared, futures
                bar.update(n)
                yield i, meta, outs
    finally:
        for _, _, shared, futures in pending:
            client.cancel([*futures, shared])
        pending.clear()
        if owned:
            close(client)
