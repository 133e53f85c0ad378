"""School-ID crosswalk: chains followed, cycles and one-to-many refused with the rows named,
Excel-mangled IDs read, and remaps applied to school-level frames and learner arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.errors import DataError
from studentflow.ingest import load_bundle
from studentflow.ingest.crosswalk import build_crosswalk, read_school_id_crosswalk
from studentflow.ingest.learners import LearnerPart
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from test_ingest_mini import write_mini

SRC = Source("school_id_crosswalk", Path("x.csv"), "x.csv")


def _frame(pairs) -> pd.DataFrame:
    return pd.DataFrame({"old_id": [o for o, _ in pairs], "new_id": [n for _, n in pairs], "school_year": "",
                         "_row": np.arange(2, 2 + len(pairs), dtype="int64")})


@st.composite
def _forest(draw):
    """Remaps forming chains and trees (no cycle, no one-to-many): each old ID points to a
    later ID of a random order, so following them always ends."""
    n = draw(st.integers(2, 40))
    ids = [f"{i:06d}" for i in draw(st.lists(st.integers(1, 999_999), min_size=n, max_size=n, unique=True))]
    pairs = []
    for i in range(n - 1):
        if draw(st.booleans()):
            pairs.append((ids[i], ids[draw(st.integers(i + 1, n - 1))]))
    return ids, pairs


@settings(max_examples=80, deadline=None)
@given(_forest(), st.randoms(use_true_random=False))
def test_chains_end_at_the_last_id(forest, rnd):
    ids, pairs = forest
    rnd.shuffle(pairs)  # file order does not matter
    xw = build_crosswalk([(SRC, _frame(pairs))])
    step = dict(pairs)

    def follow(i):
        while i in step:
            i = step[i]
        return i

    assert set(xw.final) == set(step)
    for old in step:
        assert xw.final[old] == follow(old) and xw.final[old] not in step
    # the integer table agrees, and leaves every other ID alone
    t = xw.table()
    for i in ids:
        assert f"{t[int(i)]:06d}" == xw.final.get(i, i)


def test_cycle_and_one_to_many_name_the_rows():
    with pytest.raises(DataError, match=r"cycle: 100001 → 100002 \(x\.csv row 2\), 100002 → 100003 \(x\.csv row 3\), "
                                        r"100003 → 100001 \(x\.csv row 4\)"):
        build_crosswalk([(SRC, _frame([("100001", "100002"), ("100002", "100003"), ("100003", "100001")]))])
    with pytest.raises(DataError, match=r"one-to-many.*100001 → 100002 \(x\.csv row 2\), 100003 \(x\.csv row 4\)"):
        build_crosswalk([(SRC, _frame([("100001", "100002"), ("200001", "200002"), ("100001", "100003")]))])


def test_mapping_file_ids_as_excel_writes_them(tmp_path):
    p = tmp_path / "map.csv"
    p.write_text("old_school_id,school_id_2024,BEIS School ID,sy_2005,sy_2024\n"
                 "12345.0,23456,023456,,\n"          # 2: lost zeros and a float
                 "123456,123456,123456,,\n"          # 3: nothing to remap
                 "abc,123457,123457,,\n"             # 4: invalid
                 "012345,023456.0,023456,,\n",       # 5: repeat of row 2
                 encoding="utf-8")
    src = Source("school_id_crosswalk", p, "map.csv", columns=(("old_id", "old_school_id"), ("new_id", "school_id_2024")))
    led = Ledger()
    df = read_school_id_crosswalk(src, led)
    assert list(zip(df["old_id"], df["new_id"], df["_row"])) == [("012345", "023456", 2)]
    events = set(zip(led.frame()["row"], led.frame()["action"]))
    assert events == {(3, "dropped"), (4, "dropped"), (5, "merged")}
    assert led.detected[("school_id_crosswalk", "map.csv")]["columns"]["old_id"].how == "manifest"


def test_learner_arrays_remapped_cheaply_with_ledger_rows():
    xw = build_crosswalk([(SRC, _frame([("900001", "100001"), ("900002", "900003"), ("900003", "100002")]))])
    part = LearnerPart("transitions", "t.csv", {
        "lrn": np.arange(5, dtype=np.int64), "origin": np.array([900001, 100001, 900002, -1, 5], dtype=np.int32),
        "destination": np.array([100002, 900003, 100002, 100002, 100002], dtype=np.int32),
        "row": np.arange(2, 7, dtype=np.int64)})
    led = Ledger()
    out = xw.remap_part(part, led, xw.table())
    assert out.arrays["origin"].tolist() == [100001, 100001, 100002, -1, 5]
    assert out.arrays["destination"].tolist() == [100002, 100002, 100002, 100002, 100002]
    assert out.arrays["origin"].dtype == np.int32 and part.arrays["origin"][0] == 900001  # input untouched
    f = led.frame()
    assert sorted(zip(f["row"], f["school_id"])) == [(2, "100001"), (3, "100002"), (4, "100002")]
    assert (f["action"] == "remapped").all() and f["reason"].str.contains("school ID 90000[123] replaced").all()


def test_old_ids_in_mini_region_are_remapped_before_joins(tmp_path):
    """Old IDs in the coordinates and the Grade 6 column, listed in a crosswalk that comes
    last in the manifest, give the bundle of the clean mini region."""
    clean = load_bundle(write_mini(tmp_path / "clean"))
    m = write_mini(tmp_path / "old", extra_manifest='[[source]]\nkind = "school_id_crosswalk"\npath = "xw.csv"\n')
    folder = m.parent
    (folder / "xw.csv").write_text("Old School ID,New School ID,School Year\n777001,100001,2019-2020\n"
                                   "777002,777001,2015-2016\n", encoding="utf-8")
    coords = (folder / "coords.csv").read_text().replace("100001,14.65", "777002,14.65")
    (folder / "coords.csv").write_text(coords)
    import gzip
    text = gzip.decompress((folder / "gr7_ncr.csv.gz").read_bytes()).decode().replace(",100001,y", ",777001,y")
    (folder / "gr7_ncr.csv.gz").write_bytes(gzip.compress(text.encode()))
    b = load_bundle(m)
    pd.testing.assert_frame_equal(b.flows, clean.flows)
    assert b.schools.geometry.equals(clean.schools.geometry)
    rem = b.ledger[b.ledger["action"] == "remapped"]
    assert set(zip(rem["file"], rem["row"])) == {("coords.csv", 2), ("gr7_ncr.csv.gz", 2), ("gr7_ncr.csv.gz", 3),
                                                 ("gr7_ncr.csv.gz", 4), ("gr7_ncr.csv.gz", 7)}
    assert (rem["school_id"] == "100001").all()
    src = b.sources.set_index("file")
    assert src.loc["gr7_ncr.csv.gz", "remapped"] == 4 and src.loc["xw.csv", "rows_read"] == 2


def test_old_ids_in_the_road_matrix_index_are_remapped(sample_dir, sample_bundle, tmp_path):
    """A distance matrix whose index still names some schools by old IDs (one of them
    also under its new ID) gives the sample's distances once the crosswalk is listed."""
    import json

    from studentflow.pipeline import compute_distances

    import shutil

    for f in sample_dir.iterdir():
        if f.is_file() and f.name not in ("manifest.toml", "road_matrix_index.json"):
            shutil.copy(f, tmp_path / f.name)  # not symlinks: paths must stay in the manifest's folder
    index = json.loads((sample_dir / "road_matrix_index.json").read_text())
    rows, cols = index["rows"], index["cols"]
    both = [s for s in rows if s in cols][:4]
    only_cols = [s for s in cols if s not in rows][:2]
    renamed = {sid: f"{900001 + k}" for k, sid in enumerate(both + only_cols)}
    for sid, old in renamed.items():
        for table in (rows, cols):
            if sid in table:
                table[old] = table.pop(sid)
    cols[both[0]] = list(cols[renamed[both[0]]])  # listed under the old and the new ID
    (tmp_path / "road_matrix_index.json").write_text(json.dumps(index))
    # the mapping file as Excel writes it: numbers with ".0"
    (tmp_path / "map.csv").write_text("old_id,new_id\n" + "".join(f"{o}.0,{n}\n" for n, o in renamed.items()))
    manifest = (sample_dir / "manifest.toml").read_text() + '\n[[source]]\nkind = "school_id_crosswalk"\npath = "map.csv"\n'
    (tmp_path / "manifest.toml").write_text(manifest)

    bundle = load_bundle(tmp_path / "manifest.toml")
    key = ["origin_id", "destination_id"]
    got = compute_distances(bundle).sort_values(key).reset_index(drop=True)
    want = compute_distances(sample_bundle).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    led = bundle.ledger
    hits = led[(led["source"] == "road_distances") & (led["action"] == "remapped")]
    assert set(hits["school_id"]) == set(renamed)  # named by the new ID, as every ledger row
    assert len(hits) == sum((old in rows) + (old in cols) for old in renamed.values())  # one per key
    assert hits["reason"].str.contains("replaced by").all()
