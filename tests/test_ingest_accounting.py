"""Nothing unrecorded, kind by kind: every raw row of every source kind (the new ones
included) is in a canonical table or in the ledger, and the known holes are closed
(repeated subsidy rates, repeated road edges, schools without a point or PSGC code)."""

from __future__ import annotations

import gzip

from studentflow.ingest import KINDS, load_bundle
from test_ingest_mini import write_mini
from test_ingest_sample import _check_accounting

EXTRA = ('[[source]]\nkind = "school_id_crosswalk"\npath = "xw.csv"\n\n'
         '[[source]]\nkind = "road_network"\npath = "roads.csv.gz"\n\n'
         '[[source]]\nkind = "road_distances"\npath = "m.npy"\n\n')


def _region(tmp_path):
    import numpy as np

    m = write_mini(tmp_path / "r", extra_manifest=EXTRA)
    f = m.parent
    (f / "xw.csv").write_text("old_id,new_id\n777001,100002\nxx,100001\n100003,100003\n777001,100002\n"
                              "777009,100004\n", encoding="utf-8")
    lines = (f / "coords.csv").read_text().splitlines()
    # 100002's point under an old ID; 100006 (municipality matching no PSGC name) loses its point
    lines[2] = lines[2].replace("100002", "777001")
    (f / "coords.csv").write_text("\n".join(lines[:-1]) + "\n")
    (f / "rates.csv").write_text((f / "rates.csv").read_text() + 'NCR,7,"₱13,500"\nOther,8,"₱9,000"\n')
    edges = ["u,v,length_m,geometry",
             '1,2,100,"LINESTRING (121 14.6, 121.001 14.6)"', '2,3,100,"LINESTRING (121.001 14.6, 121.002 14.6)"',
             '2,1,90,"LINESTRING (121.001 14.6, 121 14.6)"', '3,3,5,"LINESTRING (121.002 14.6, 121.002 14.6)"']
    (f / "roads.csv.gz").write_bytes(gzip.compress(("\n".join(edges) + "\n").encode()))
    np.save(f / "m.npy", np.zeros((1, 1), dtype=np.float32))
    (f / "m_index.json").write_text('{"units": "m", "rows": {"100001": [0]}}')
    return m


def _events(b, file):
    led = b.ledger[b.ledger["file"] == file]
    return set(zip(led["row"], led["action"]))


def test_every_kind_every_row_in_a_table_or_the_ledger(tmp_path):
    m = _region(tmp_path)
    b = load_bundle(m)
    _check_accounting(b, m.parent)   # per file: read = kept + merged + dropped, counted from the raw file
    assert set(b.sources["kind"]) == set(KINDS) - {"road_distances"}  # a binary matrix, passed on unread
    src = b.sources.set_index("file")
    # kept rows are the canonical tables' rows
    assert src.loc["enrollment.xlsx", "kept"] == len(b.schools)
    assert src.loc["coords.csv", "kept"] == b.schools.geometry.notna().sum()
    assert src.loc["gr7_ncr.csv.gz", "kept"] == b.flows["learners"].sum()
    assert src.loc["rates.csv", "kept"] == 3 and b.subsidy.loc["100003", "amount"] == 9_000.0
    # the crosswalk: invalid, same-ID and repeated rows recorded, one remap kept per old ID
    assert _events(b, "xw.csv") == {(3, "dropped"), (4, "dropped"), (5, "merged")}
    assert src.loc["xw.csv", "kept"] == 2 and src.loc["coords.csv", "remapped"] == 1
    # holes closed: a repeated tier/grade, a non-Grade-7 amount, a repeated edge, a self-loop
    assert _events(b, "rates.csv") == {(5, "merged"), (6, "dropped")}
    assert _events(b, "roads.csv.gz") == {(4, "merged"), (5, "dropped")}
    assert src.loc["roads.csv.gz", "kept"] == 2
    # schools without a point: 100004 (bad points) and 100006, whose municipality matches no
    # PSGC name either, so it also has no PSGC code: both say so
    inc = b.ledger[(b.ledger["action"] == "incomplete")]
    assert sorted(inc["school_id"]) == ["100004", "100006", "100006"]
    assert b.schools.loc["100006", "psgc_code"] == ""
    assert (inc["file"] == "enrollment.xlsx").all() and set(inc["row"]) == {8, 12}
