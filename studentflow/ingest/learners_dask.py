"""Learner-level files on a Dask cluster: one task per file, combined on the client.

Each ``transitions`` / ``esc_beneficiaries`` file of the manifest is read, validated and
compacted by :func:`studentflow.ingest.learners.read_learner_part` as a task on the
workers (the workers must see the files at the manifest's paths). The client takes the
parts back in manifest order, so the ledger rows, errors and flows are those of the
single-process run. Dask is imported only here, and only when a client was given.
"""

from __future__ import annotations

from contextlib import contextmanager

from studentflow.dask_client import close, resolve
from studentflow.ingest.learners import LEARNER_KINDS, LearnerPart, read_learner_part
from studentflow.ingest.manifest import Source

__all__ = ["learner_reader"]


@contextmanager
def learner_reader(client, sources: list[Source]):
    """Submit every learner-level source as a task; yield ``read(src) -> LearnerPart``.

    Parameters
    ----------
    client : dask.distributed.Client or str
        Client, or scheduler address (connected here and closed on exit).
    sources : list of Source
        The manifest's sources; only learner-level kinds are submitted, in order.

    Yields
    ------
    callable
        ``read(src)`` waits for that source's task and returns its :class:`LearnerPart`;
        a task's :class:`~studentflow.errors.DataError` is raised again here, when the
        manifest order reaches that file (as the single-process run would).
    """
    c, owned = resolve(client)
    futures = {}
    try:
        for i, src in enumerate(s for s in sources if s.kind in LEARNER_KINDS):
            futures[id(src)] = c.submit(read_learner_part, src, pure=False,
                                        key=f"studentflow-learners-{i}-{src.kind}-{_token()}")

        def read(src: Source) -> LearnerPart:
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


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:12]
