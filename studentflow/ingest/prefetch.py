"""Reading a manifest's files ahead on threads (the single-process run without Dask).

Each tabular source is read on its own by :func:`~studentflow.ingest.learners.read_source`
(its own frame and ledger rows), which is what lets the Dask path read files on workers.
Without a cluster the files are read the same way on a few threads, largest first, and
taken back in manifest order: the CSV readers (Arrow) and the compression work release
the GIL, so a national manifest's learner files are read while its workbooks are parsed.
The workbook parser (calamine) holds the GIL, though (a national enrolment workbook: 1.1 s,
then 0.7 s of pandas to make its frame), so the largest workbook, from
:data:`FORK_BYTES` on, is read in a forked child process (:mod:`studentflow.forked`) when
a core is free (:func:`studentflow.forked.wanted`); only its frame and ledger come back.
Results, ledger rows and errors are those of reading the files one by one: a file's
:class:`~studentflow.errors.DataError` is raised when the manifest order reaches that file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from studentflow.ingest.learners import read_source
from studentflow.ingest.learners_dask import _cost
from studentflow.ingest.manifest import Source
from studentflow.ingest.readers import READERS

__all__ = ["thread_reader", "READ_THREADS", "FORK_BYTES"]

#: Reading threads: the cores, at most 2 (one core: read the files one by one, here).
READ_THREADS = max(1, min(2, os.cpu_count() or 1))
#: A workbook (XLSX) at least this large (bytes) is read in a forked child process (the
#: largest one only) when a core is free; None: never. A national enrolment workbook is 7 MB.
FORK_BYTES: int | None = 4 << 20


def _workbook_to_fork(todo: list[Source]) -> Source | None:
    """The largest XLSX source of at least :data:`FORK_BYTES` bytes, if forking is wanted."""
    if FORK_BYTES is None:
        return None
    sizes = []
    for s in todo:
        p = Path(s.path)
        if p.name.lower().endswith((".xlsx", ".xlsm")) and p.is_file() and p.stat().st_size >= FORK_BYTES:
            sizes.append((p.stat().st_size, s))
    if not sizes:
        return None
    from studentflow import forked

    return max(sizes, key=lambda t: t[0])[1] if forked.wanted() else None


@contextmanager
def thread_reader(sources: list[Source], threads: int = READ_THREADS):
    """Start reading ``sources`` on ``threads`` threads; yield ``read(src)``.

    Parameters
    ----------
    sources : list of Source
        The sources to read (each read once), started largest first (by size); the
        largest workbook from :data:`FORK_BYTES` on in a forked child when a core is free.
    threads : int
        Reading threads; 1 reads each source when it is asked for (and never forks).

    Yields
    ------
    callable
        ``read(src)``: what ``read_source(src)`` returns (or raises), waiting for it if
        it is still being read. Reads not taken are cancelled on exit (running ones end,
        a forked child is stopped).
    """
    todo = sorted((s for s in sources if s.kind in READERS), key=_cost, reverse=True)
    if threads <= 1 or len(todo) <= 1:
        yield read_source
        return
    child = {}
    big = _workbook_to_fork(todo)
    if big is not None:  # forked before the threads start: the child has only this thread
        from studentflow import forked

        child[id(big)] = forked.start(lambda: read_source(big))
        todo = [s for s in todo if s is not big]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="studentflow-read")
    futures = {id(s): pool.submit(read_source, s) for s in todo}

    def read(src: Source):
        pending = child.pop(id(src), None)
        if pending is not None:
            return pending.result()
        fut = futures.pop(id(src), None)
        return read_source(src) if fut is None else fut.result()

    try:
        yield read
    finally:
        for pending in child.values():
            pending.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
