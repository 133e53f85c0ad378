"""Reading a manifest's files ahead on threads (the single-process run without Dask).

Each tabular source is read on its own by :func:`~studentflow.ingest.learners.read_source`
(its own frame and ledger rows), which is what lets the Dask path read files on workers.
Without a cluster the files are read the same way on a few threads, largest first, and
taken back in manifest order: the workbook parser (calamine), the CSV readers (Arrow) and
the compression work release the GIL, so a national manifest's enrolment workbook is
parsed while its learner files are read. Results, ledger rows and errors are those of
reading the files one by one: a file's :class:`~studentflow.errors.DataError` is raised
when the manifest order reaches that file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from studentflow.ingest.learners import read_source
from studentflow.ingest.learners_dask import _cost
from studentflow.ingest.manifest import Source
from studentflow.ingest.readers import READERS

__all__ = ["thread_reader", "READ_THREADS"]

#: Reading threads: the cores, at most 2 (one core: read the files one by one, here).
READ_THREADS = max(1, min(2, os.cpu_count() or 1))


@contextmanager
def thread_reader(sources: list[Source], threads: int = READ_THREADS):
    """Start reading ``sources`` on ``threads`` threads; yield ``read(src)``.

    Parameters
    ----------
    sources : list of Source
        The sources to read (each read once), started largest first (by size).
    threads : int
        Reading threads; 1 reads each source when it is asked for.

    Yields
    ------
    callable
        ``read(src)``: what ``read_source(src)`` returns (or raises), waiting for it if
        it is still being read. Reads not taken are cancelled on exit (running ones end).
    """
    todo = sorted((s for s in sources if s.kind in READERS), key=_cost, reverse=True)
    if threads <= 1 or len(todo) <= 1:
        yield read_source
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="studentflow-read")
    futures = {id(s): pool.submit(read_source, s) for s in todo}

    def read(src: Source):
        fut = futures.pop(id(src), None)
        return read_source(src) if fut is None else fut.result()

    try:
        yield read
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
