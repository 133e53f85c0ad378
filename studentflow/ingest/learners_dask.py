"""Raw files on a Dask cluster: one task per file, taken back on the client in manifest order.

Each tabular source of the manifest is read by
:func:`studentflow.ingest.learners.read_source` as a task on the workers (the workers must
see the files at the manifest's paths): learner-level files (transitions, ESC billing)
come back compacted to integer arrays (:class:`~studentflow.ingest.learners.LearnerPart`),
the other, school-level ones as their reader's frame. Each carries its own ledger rows.
The client takes the results in manifest order, so ledger rows, errors and flows are those
of the single-process run. Dask is imported only here, and only when a client was given.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from studentflow.dask_client import close, resolve
from studentflow.ingest.learners import read_source
from studentflow.ingest.manifest import Source
from studentflow.ingest.readers import READERS

__all__ = ["dask_reader"]


@contextmanager
def dask_reader(client, sources: list[Source]):
    """Submit every tabular source as a task at once; yield ``read(src)``.

    Parameters
    ----------
    client : dask.distributed.Client or str
        Client, or scheduler address (connected here and closed on exit).
    sources : list of Source
        The manifest's sources; submitted largest first (by :func:`_cost`), taken back
        in manifest order.

    Yields
    ------
    callable
        ``read(src)`` waits for that source's task and returns what
        :func:`~studentflow.ingest.learners.read_source` returns; a task's
        :class:`~studentflow.errors.DataError` is raised again here, when the manifest
        order reaches that file (as in the single-process run). Tasks not taken are
        cancelled on exit.
    """
    c, owned = resolve(client)
    futures = {}
    try:
        # one task group ("studentflow-read"), largest files first: workers take them as
        # they free up (higher priority runs first)
        todo = sorted((s for s in sources if s.kind in READERS), key=_cost, reverse=True)
        for rank, src in enumerate(todo):
            futures[id(src)] = c.submit(read_source, src, pure=False, priority=len(todo) - rank,
                                        key=f"studentflow-read-{uuid.uuid4().hex}")

        def read(src: Source):
            fut = futures.pop(id(src))
            try:
                return fut.result()
            finally:
                fut.release()

        yield read
    finally:
        if futures:
            c.cancel(list(futures.values()))
        if owned:
            close(c)


def _cost(src: Source) -> float:
    """Rough reading cost of a file: its size, workbooks and gzip weighted up (their
    bytes take longer to parse than plain CSV). Only orders the tasks."""
    try:
        size = float(src.path.stat().st_size)
    except OSError:
        return 0.0
    name = src.path.name.lower()
    return size * (5.0 if name.endswith((".xlsx", ".xlsm")) else 4.0 if name.endswith(".gz") else 1.0)
