"""Learner-level ingest: streamed compact path = string reference; Dask path = single process."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.errors import DataError
from studentflow.ingest import load_bundle, read_manifest
from studentflow.ingest.flows import build_flows
from studentflow.ingest.harmonise import stack
from studentflow.ingest.learners import LEARNER_KINDS, combine_flows, read_learner_part
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.readers import READERS

KEY = ["origin_id", "destination_id"]


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """Three regions: three transitions files and three billing files, plus truth/."""
    from studentflow.synth import make_region

    out = tmp_path_factory.mktemp("learners")
    make_region(seed=3, scale=0.2, out_dir=out, write_matrix=False)
    return out


def _lines(path: Path) -> list[str]:
    op = gzip.open if path.name.endswith(".gz") else open
    with op(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    op = gzip.open if path.name.endswith(".gz") else open
    with op(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def messy(region, tmp_path_factory) -> Path:
    """The region plus learner rows hitting every flow rule across files: an LRN repeated
    from an earlier file, an LRN written with '.0', blank and malformed LRNs, billing rows
    with a malformed LRN twice at one school, a Grade 8 row, an ESC ID outside the slots
    list with and without a DepEd ID, and a billing LRN with no Grade 7 record."""
    out = tmp_path_factory.mktemp("messy") / "r"
    shutil.copytree(region, out)
    files = {s.kind + ":" + s.file: s.path for s in read_manifest(out / "manifest.toml")}
    t1, t2 = files["transitions:gr7_enrollees_ncr.csv.gz"], files["transitions:gr7_enrollees_region4a.csv.gz"]
    first, last = _lines(t1), _lines(t2)
    cols = last[0].split(",")
    lrn_at, g7_at = cols.index("LRN"), cols.index("BEIS School ID in Grade 7")
    early = first[5].split(",")
    rows = []
    for lrn in (early[lrn_at], early[lrn_at][:-3] + "777.0", "", "12345", "ABCDEFGHIJKL"):
        r = last[-1].split(",")
        r[lrn_at] = lrn
        rows.append(",".join(r))
    _write(t2, last + rows)
    bill = files["esc_beneficiaries:esc_billing_region3.csv"]
    b = _lines(bill)
    bcols = b[0].split(",")
    li, gi, ei, di = (bcols.index(c) for c in ("lrn", "grade", "school id", "deped id"))
    base = b[-1].split(",")
    extra = []
    for change in ({li: "NOT-AN-LRN"}, {li: "NOT-AN-LRN"}, {li: "NOT-AN-LRN", ei: "9999991"}, {gi: "8"},
                   {ei: "9999992"}, {ei: "9999993", di: ""}, {li: "999999999999"},
                   {li: early[lrn_at], ei: "9999994", di: early[g7_at]}):
        r = list(base)
        for k, v in change.items():
            r[k] = v
        extra.append(",".join(r))
    _write(bill, b + extra)
    return out / "manifest.toml"


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


def _lrns(manifest: Path) -> set[str]:
    out = set()
    for s in read_manifest(Path(manifest)):
        if s.kind in LEARNER_KINDS:
            out |= set(re.findall(r"(?<!\d)\d{12}(?!\d)", "\n".join(_lines(s.path))))
    return out


def _assert_same_bundle(a, b) -> None:
    pd.testing.assert_frame_equal(a.flows, b.flows, check_exact=True)
    pd.testing.assert_frame_equal(a.ledger, b.ledger, check_exact=True)
    pd.testing.assert_frame_equal(a.sources, b.sources, check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(a.schools), pd.DataFrame(b.schools), check_exact=True)


def _reference(manifest: Path, monkeypatch):
    """Run load_bundle, and beside its compact flow step the string reference
    (:func:`build_flows` on the stacked string frames) on the same study area."""
    import studentflow.ingest.load as ingest

    seen = {}

    def spy(trans, billing, schools_index, crosswalk, ledger):
        mine = Ledger()
        flows = combine_flows(trans, billing, schools_index, crosswalk, mine)
        seen.update(flows=flows, ledger=mine.frame(), schools=schools_index, crosswalk=crosswalk)
        ledger.extend(mine)
        return flows

    monkeypatch.setattr(ingest, "combine_flows", spy)
    bundle = load_bundle(manifest)
    frames = {k: [] for k in LEARNER_KINDS}
    for s in read_manifest(manifest):
        if s.kind in LEARNER_KINDS:
            frames[s.kind].append((s, READERS[s.kind](s, Ledger())))
    ref = Ledger()
    flows = build_flows(stack(frames["transitions"]), stack(frames["esc_beneficiaries"]),
                        seen["schools"], seen["crosswalk"], ref)
    return bundle, seen, flows, ref.frame()


@pytest.mark.parametrize("which", ["region", "messy"])
def test_compact_flows_equal_string_reference(which, region, messy, monkeypatch):
    manifest = region / "manifest.toml" if which == "region" else messy
    bundle, seen, flows, ledger = _reference(manifest, monkeypatch)
    pd.testing.assert_frame_equal(seen["flows"], flows, check_exact=True)
    pd.testing.assert_frame_equal(seen["ledger"], ledger, check_exact=True)
    pd.testing.assert_frame_equal(bundle.flows, flows, check_exact=True)
    if which == "messy":  # every rule fired, in the files where it was planted
        got = set(zip(ledger["file"], ledger["reason"]))
        t, b = "gr7_enrollees_region4a.csv.gz", "esc_billing_region3.csv"
        for f, why in ((t, "repeated LRN"), (t, "LRN blank"), (b, "further billing row"), (b, "not for Grade 7"),
                       (b, "not in the ESC slots list"), (b, "no kept Grade 7 record")):
            assert any(g == f and why in r for g, r in got), (f, why)
        assert not (set(re.findall(r"\d{12}", bundle.ledger.to_csv())) & _lrns(manifest))


def test_streamed_flows_equal_truth(region):
    bundle = load_bundle(region / "manifest.toml")
    truth = pd.read_csv(region / "truth" / "flows.csv", dtype={"origin_id": str, "destination_id": str})
    truth = truth.sort_values(KEY).reset_index(drop=True)[bundle.flows.columns]
    pd.testing.assert_frame_equal(bundle.flows, truth, check_dtype=False)
    assert bundle.flows["esc_beneficiaries"].sum() > 0
    assert len([s for s in read_manifest(region / "manifest.toml") if s.kind == "transitions"]) == 3


def test_part_is_compact(region):
    src = next(s for s in read_manifest(region / "manifest.toml") if s.kind == "transitions")
    part = read_learner_part(src)
    assert {a.dtype.kind for a in part.arrays.values()} <= {"i", "b"}
    assert part.arrays["lrn"].dtype == np.int64 and (part.arrays["lrn"] >= 0).all()
    raw = pd.read_csv(src.path, dtype=str, keep_default_na=False)
    dropped = part.ledger.frame()
    assert len(part) + (dropped["action"] == "dropped").sum() == part.ledger.rows_read[(src.kind, src.file)] == len(raw)
    kept = raw.iloc[part.arrays["row"] - 2]
    np.testing.assert_array_equal(part.arrays["lrn"], kept["LRN"].astype("int64").to_numpy())
    np.testing.assert_array_equal(part.arrays["destination"], kept["BEIS School ID in Grade 7"].astype("int64"))
    assert str(part.arrays["lrn"][0]) not in repr(part) + part.summary()


@pytest.mark.parametrize("which", ["region", "messy"])
def test_dask_equals_single_process(which, region, messy, client):
    manifest = region / "manifest.toml" if which == "region" else messy
    _assert_same_bundle(load_bundle(manifest, client=client), load_bundle(manifest))


def test_dask_by_address(region, client):
    manifest = region / "manifest.toml"
    _assert_same_bundle(load_bundle(manifest, client=client.scheduler.address), load_bundle(manifest))


def test_dask_panel_equals_single_process(region, client, tmp_path):
    """Two school years on Dask: the earlier year's transitions name one Grade 7 school by
    its 7-digit twin, which only the crosswalk makes valid (the workers get the prepared
    sources), and each shared file is read once for both years."""
    from studentflow.ingest import load_panel

    out = tmp_path / "two"
    shutil.copytree(region, out)
    src = {s.kind + ":" + s.file: s for s in read_manifest(out / "manifest.toml")}
    enrol = next(s for k, s in src.items() if k.startswith("enrollment:"))
    trans = [s for k, s in src.items() if k.startswith("transitions:")]
    lines = _lines(trans[0].path)
    at = lines[0].split(",").index("BEIS School ID in Grade 7")
    sid = lines[1].split(",")[at]
    old = [",".join("1" + v if j == at and v == sid else v for j, v in enumerate(line.split(","))) for line in lines]
    _write(out / ("old_" + trans[0].file), old)
    shutil.copy(enrol.path, out / ("old_" + enrol.file))
    extra = [f'[[source]]\nkind = "enrollment"\npath = "old_{enrol.file}"\nsheet = "{enrol.sheet}"\n'
             f'school_year = "2022-2023"\n']
    extra += [f'[[source]]\nkind = "transitions"\npath = "{"old_" if t is trans[0] else ""}{t.file}"\n'
              f'school_year = "2022-2023"\n' for t in trans]
    extra.append(f'[[source]]\nkind = "school_id_crosswalk"\npath = "xw.csv"\n')
    (out / "xw.csv").write_text(f"old_id,new_id\n1{sid},{sid}\n")
    m = out / "manifest.toml"
    m.write_text(m.read_text() + "\n" + "\n".join(extra))
    local, remote = load_panel(m), load_panel(m, client=client)
    assert local.years == remote.years == ("2022-2023", "2023-2024")
    for y in local:
        _assert_same_bundle(remote[y], local[y])
    pd.testing.assert_frame_equal(remote.ledger, local.ledger)
    led = local.ledger
    rem = led[led["action"] == "remapped"]
    assert (rem["school_year"] == "2022-2023").all() and (rem["file"] == "old_" + trans[0].file).all()
    written = {i for i, line in enumerate(lines[1:], start=2) if line.split(",")[at] == sid}
    dropped = set(led.loc[(led["file"] == "old_" + trans[0].file) & (led["action"] == "dropped"), "row"])
    # every twin written is remapped, except on rows the reader drops first (an invalid Grade 6 ID)
    assert len(rem) > 100 and set(rem["row"]) <= written and written - set(rem["row"]) <= dropped
    # the same learners; no billing in the earlier year (its files are the later year's)
    keep = ["origin_id", "destination_id", "learners"]
    pd.testing.assert_frame_equal(local["2022-2023"].flows[keep], local["2023-2024"].flows[keep])
    assert local["2022-2023"].flows["esc_beneficiaries"].sum() == 0


def _break(manifest: Path, tmp: Path, how: str) -> Path:
    out = tmp / how
    shutil.copytree(manifest.parent, out)
    gr7 = out / "gr7_enrollees_region3.csv.gz"
    if how == "column":
        lines = _lines(gr7)
        lines[0] = lines[0].replace("BEIS School ID in Grade 6", "Grade Six Place")
        _write(gr7, lines)
    elif how == "bytes":
        data = gzip.decompress(gr7.read_bytes())
        cut = data.index(b"\n", len(data) // 2)
        gr7.write_bytes(gzip.compress(data[:cut] + b"\n\xff\xfe," + data[cut:]))
    elif how == "two":  # a bad transitions file, and a bad billing file after it
        gr7.write_bytes(b"\x1f\x8b not really gzip")
        (out / "esc_billing_ncr.csv").write_text("")
    elif how == "early":  # a bad school-level file before a bad learner file: that one first
        (out / "school_coordinates.csv").write_text("")
        gr7.write_bytes(b"\x1f\x8b not really gzip")
    return out / "manifest.toml"


@pytest.mark.parametrize("how, pattern", [
    ("column", r"gr7_enrollees_region3\.csv\.gz: no column for 'BEIS School ID in Grade 6'"),
    ("bytes", r"gr7_enrollees_region3\.csv\.gz: cannot read as CSV text"),
    ("two", r"gr7_enrollees_region3\.csv\.gz: cannot read"),
    ("early", r"school_coordinates\.csv: the file is empty"),
])
def test_bad_learner_file_same_error(region, tmp_path, client, how, pattern):
    manifest = _break(region / "manifest.toml", tmp_path, how)
    with pytest.raises(DataError, match=pattern) as here:
        load_bundle(manifest)
    with pytest.raises(DataError, match=pattern) as there:
        load_bundle(manifest, client=client)
    assert str(here.value) == str(there.value)
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", str(here.value))


def _random_frames(seed: int):
    """Reader-shaped string frames of two transitions and two billing files, with repeated
    and malformed LRNs (also written with '.0'), schools in and out of the study area,
    ESC IDs in and out of the crosswalk, blank DepEd IDs and grades other than 7."""
    rng = np.random.default_rng(seed)
    schools = pd.Index([f"{i:06d}" for i in rng.choice(10**6, 12, replace=False)])
    outside = [f"{i:06d}" for i in rng.choice(10**6, 3, replace=False) if f"{i:06d}" not in schools]
    pool_ids = list(schools) + outside
    lrns = [f"{x:012d}" for x in rng.integers(0, 10**12, 25)] + ["", "12345", "ABCDEFGHIJKL"]

    def lrn_text(k):
        v = lrns[k]
        return v + ".0" if v and rng.random() < 0.1 else (" " + v if rng.random() < 0.05 else v)

    esc_ids = [str(x) for x in rng.integers(1000, 10**7, 6)]
    crosswalk = pd.Series(list(rng.choice(schools, 4)), index=esc_ids[:4], dtype="str")
    trans, bill = [], []
    for f in range(2):
        n = int(rng.integers(0, 40))
        df = pd.DataFrame({"lrn": [lrn_text(k) for k in rng.integers(0, len(lrns), n)],
                           "origin_id": list(rng.choice(pool_ids, n)) if n else [],
                           "destination_id": list(rng.choice(pool_ids, n)) if n else [],
                           "_row": np.sort(rng.choice(np.arange(2, 200), n, replace=False)).astype("int64")})
        trans.append(df.astype({"lrn": "str", "origin_id": "str", "destination_id": "str"}))
        m = int(rng.integers(0, 30))
        bill.append(pd.DataFrame({
            "lrn": pd.array([lrn_text(k) for k in rng.integers(0, len(lrns), m)], dtype="str"),
            "esc_id": pd.array(list(rng.choice(esc_ids, m)) if m else [], dtype="str"),
            "deped_id": pd.array([("" if rng.random() < 0.3 else str(rng.choice(pool_ids))) for _ in range(m)],
                                 dtype="str"),
            "grade": rng.choice([7.0, 7.0, 7.0, 8.0, np.nan], m),
            "amount": np.full(m, 9000.0),
            "_row": np.sort(rng.choice(np.arange(2, 200), m, replace=False)).astype("int64")}))
    return schools, crosswalk, trans, bill


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_combine_flows_equals_reference_on_random_learners(seed):
    from studentflow.ingest.learners import compact_billing, compact_transitions
    from studentflow.ingest.manifest import Source

    schools, crosswalk, trans, bill = _random_frames(seed)
    srcs_t = [Source("transitions", Path(f"t{i}.csv"), f"t{i}.csv") for i in range(2)]
    srcs_b = [Source("esc_beneficiaries", Path(f"b{i}.csv"), f"b{i}.csv") for i in range(2)]
    ref = Ledger()
    want = build_flows(stack(list(zip(srcs_t, trans))), stack(list(zip(srcs_b, bill))), schools, crosswalk, ref)
    led = Ledger()
    got = combine_flows([compact_transitions(s, df, Ledger()) for s, df in zip(srcs_t, trans)],
                        [compact_billing(s, df, Ledger()) for s, df in zip(srcs_b, bill)], schools, crosswalk, led)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    pd.testing.assert_frame_equal(led.frame(), ref.frame(), check_exact=True)


def test_streamed_blocks_equal_whole_file_reader(messy, tmp_path, monkeypatch):
    """The block-streamed transitions path gives the arrays and ledger rows of the string
    reader plus compaction, on every messy file and across block boundaries; a file with a
    blank line is left to the exact reader."""
    from studentflow.ingest import learners_fast
    from studentflow.ingest.learners import compact_transitions
    from studentflow.ingest.readers import read_transitions

    monkeypatch.setattr(learners_fast, "BLOCK_BYTES", 1 << 16)  # several blocks per file
    for src in (s for s in read_manifest(messy) if s.kind == "transitions"):
        fast = learners_fast.fast_transitions(src)
        assert fast is not None, src.file
        led = Ledger()
        exact = compact_transitions(src, read_transitions(src, led), led)
        for k, v in exact.arrays.items():
            np.testing.assert_array_equal(fast[0][k], v, err_msg=k)
            assert fast[0][k].dtype == v.dtype
        pd.testing.assert_frame_equal(fast[1].frame(), led.frame(), check_exact=True)
        assert fast[1].rows_read == led.rows_read
    src = next(s for s in read_manifest(messy) if s.kind == "transitions")
    lines = _lines(src.path)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(["Grade 7 movers", *lines[:3], "", *lines[3:8]]) + "\n", encoding="utf-8")
    moved = type(src)(src.kind, blank, "blank.csv")
    assert learners_fast.fast_transitions(moved) is None
    part = read_learner_part(moved)
    assert part.ledger.rows_read[("transitions", "blank.csv")] == 7
    assert set(part.arrays["row"]) <= {3, 4, 6, 7, 8, 9, 10}
