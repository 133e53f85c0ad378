"""The road network's rows in the ledger (the network itself is read by :mod:`studentflow.geo`).

Ingestion passes the ``road_network`` path on (``Bundle.extras``); the distance stage
builds the graph, keeping the shortest of parallel edges and leaving self-loops out. So
that those rows are not lost unrecorded, a CSV edge list is scanned here (node columns
``u`` and ``v`` only, with pyarrow): a repeated edge (the same two nodes, either
direction) is ``merged``, an edge from a node to itself ``dropped``. GraphML and
GeoPackage networks are passed on unscanned, as is a file that does not read as an edge
list (the distance stage reports it).
"""

from __future__ import annotations

import numpy as np

from studentflow.ingest.headers import Match
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readbase import note_read

REPEATED = "repeated edge between the same two nodes (either direction): the distance stage keeps the shortest"
SELF_LOOP = "edge from a node to itself: never shortens a path, left out by the distance stage"


def scan_road_network(src: Source, ledger: Ledger) -> bool:
    """Record a CSV edge list's rows read, repeated edges and self-loops; False if not scanned.

    Parameters
    ----------
    src : Source
        A ``road_network`` source.
    ledger : Ledger
        Receives ``rows_read``, what was detected, and the merged / dropped rows.

    Returns
    -------
    bool
        True when the file was scanned (a CSV or CSV.gz with ``u`` and ``v`` columns).
    """
    import pyarrow as pa
    from pyarrow import csv as pacsv

    if not src.path.name.lower().endswith((".csv", ".csv.gz")):
        return False
    try:
        table = pacsv.read_csv(
            src.path, parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(include_columns=["u", "v"],
                                                 column_types={"u": pa.string(), "v": pa.string()}))
    except Exception:  # not an edge list: the distance stage says why
        return False
    n = table.num_rows
    both = pa.concat_arrays([table.column("u").combine_chunks(), table.column("v").combine_chunks()])
    codes = np.asarray(both.dictionary_encode().indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    u, v = codes[:n], codes[n:]
    rows = np.arange(2, 2 + n, dtype=np.int64)  # header on line 1; a blank line fails the read above
    note_read(src, n, 1, ledger, columns={"u": Match("u", "alias", 100.0), "v": Match("v", "alias", 100.0)})
    loop = u == v
    ledger.add_many(src.kind, src.file, rows[loop], "", "dropped", SELF_LOOP)
    key = np.minimum(u, v) * (codes.max(initial=0) + 1) + np.maximum(u, v)
    _, first = np.unique(key, return_index=True)
    rep = np.ones(n, dtype=bool)
    rep[first] = False
    rep &= ~loop
    ledger.add_many(src.kind, src.file, rows[rep], "", "merged", REPEATED)
    return True
