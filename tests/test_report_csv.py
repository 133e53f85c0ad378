"""The report's CSV text (report.files.csv_cells) is byte for byte what pandas writes after
masking LRNs and making text spreadsheet-safe, for any mix of text and numbers."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studentflow.report.files import _write_csv, csv_cells, floats_as_text, mask_lrns
from studentflow.report.names import spreadsheet_safe

TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab ,\"'\n\r\t=+-@;ñ0123456789")), max_size=8),
    st.sampled_from(["123456789012", "LRN 109876543210 seen", "=SUM(A1)", "", "Bularit NHS, Gerona"]),
    st.none(),
)
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, -0.0, 0.1, 1e-300, 2.5, float("nan"), float("-inf")]))


def _reference(frame: pd.DataFrame, header: bool = True) -> str:
    return floats_as_text(spreadsheet_safe(mask_lrns(frame))).to_csv(index=False, header=header)


@st.composite
def frames(draw):
    n = draw(st.integers(1, 12))
    cols = {}
    for k in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["object", "string", "float", "int", "bool"]))
        if kind in ("object", "string"):
            values = draw(st.lists(TEXT, min_size=n, max_size=n))
            cols[f"t{k},{kind}"] = pd.Series(values, dtype=object if kind == "object" else "string")
        elif kind == "float":
            cols[f"f{k}"] = pd.Series(draw(st.lists(FLOAT, min_size=n, max_size=n)), dtype="float64")
        elif kind == "int":
            cols[f"i{k}"] = pd.Series(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n)),
                                      dtype="int64")
        else:
            cols[f"b{k}"] = pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return pd.DataFrame(cols)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.booleans())
def test_csv_text_is_the_pandas_text(frame, header):
    got = csv_cells(frame, header=header)
    assert got == _reference(frame, header=header)
    assert "123456789012" not in got and "109876543210" not in got


def test_other_shapes_and_dtypes_go_through_pandas():
    one = pd.DataFrame({"name": ["", "=x", None]})
    dated = pd.DataFrame({"when": pd.to_datetime(["2024-06-01", None]), "n": [1, 2]})
    empty = pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)})
    nullable = pd.DataFrame({"k": pd.array([1, None], dtype="Int64"), "s": ["a", "b"]})
    for frame in (one, dated, empty, nullable):
        assert csv_cells(frame) == _reference(frame)


def test_written_files_hold_the_same_text(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"scenario": rng.choice(["status quo", "net cost -1K"], 700),
                          "school_id": [f"{i:06d}" for i in rng.integers(0, 999999, 700)],
                          "placed_mean": rng.gamma(1.0, 2.0, 700)})
    plain = _write_csv(tmp_path / "t.csv", frame)
    packed = _write_csv(tmp_path / "t.csv.gz", frame, rows=256)  # three blocks, one gzip stream
    assert plain.read_text(encoding="utf-8") == _reference(frame)
    assert gzip.decompress(packed.read_bytes()).decode("utf-8") == _reference(frame)
