"""Ingest is region-agnostic: every PSGC region's names, validation and places."""

from __future__ import annotations

import pandas as pd
import pytest

from studentflow.ingest import load_bundle, values
from studentflow.ingest.places import PlaceMatcher
from studentflow.schema import ALL_REGIONS, REGION_PSGC, REGIONS


@pytest.mark.parametrize("text, canon", [
    ("Region VII", "Region VII"), ("Central Visayas", "Region VII"), ("REGION VII", "Region VII"),
    ("Region 7", "Region VII"), ("Region VII - Central Visayas", "Region VII"),
    ("CAR", "CAR"), ("Cordillera Administrative Region", "CAR"), ("BARMM", "BARMM"),
    ("Bangsamoro Autonomous Region in Muslim Mindanao", "BARMM"), ("MIMAROPA", "MIMAROPA"),
    ("Region IV-B", "MIMAROPA"), ("REGION IV-B", "MIMAROPA"), ("NIR", "NIR"), ("Negros Island Region", "NIR"),
    ("Region XIII", "Region XIII"), ("Caraga", "Region XIII"), ("Region IV-A", "Region IV-A"),
    ("CALABARZON", "Region IV-A"), ("National Capital Region", "NCR"), ("Region IV", ""), ("Visayas", ""),
])
def test_region_variants(text, canon):
    assert values.region(pd.Series([text])).iloc[0] == canon


def test_every_region_reads_as_itself():
    names = pd.Series(list(REGION_PSGC) + [r.upper() for r in REGION_PSGC])
    assert values.region(names).tolist() == list(REGION_PSGC) * 2
    assert set(ALL_REGIONS) == set(REGION_PSGC) and set(REGIONS) <= set(ALL_REGIONS)
    assert REGIONS == ("NCR", "Region III", "Region IV-A")  # the study area is unchanged


def test_place_matcher_covers_every_region():
    m = PlaceMatcher(ALL_REGIONS)
    assert set(m.places["region"]) == set(ALL_REGIONS)
    code = m.match("Cebu City", "Cebu", "Region VII")
    assert code and m.places.at[code, "region"] == "Region VII"


def test_two_region_area_ingests_whole(tmp_path):
    from studentflow.synth import make_region

    regions = ("NCR", "Region VII")
    make_region(seed=5, scale=0.1, out_dir=tmp_path, regions=regions)
    bundle = load_bundle(tmp_path / "manifest.toml")
    truth = pd.read_csv(tmp_path / "truth" / "schools.csv", dtype={"school_id": str}).set_index("school_id")
    # no school of either region dropped: every true school is there, in its own region
    assert set(truth["region"]) == set(regions)
    assert set(bundle.schools.index) == set(truth.index)
    assert (bundle.schools["region"] == truth.loc[bundle.schools.index, "region"]).all()
    led = bundle.ledger
    about_region = led["reason"].str.contains("region", case=False)
    assert not (about_region & (led["action"] == "dropped")).any()
    assert (about_region & (led["action"] == "corrected")).any()  # written variants were canonicalised
    # municipalities matched in Region VII too, and its LGUs in the areas table
    assert set(bundle.areas["region"]) == set(regions)
    vii = bundle.schools[bundle.schools["region"] == "Region VII"]
    assert len(vii) and (vii["psgc_code"] != "").all()
    # flows equal the truth
    key = ["origin_id", "destination_id"]
    flows = pd.read_csv(tmp_path / "truth" / "flows.csv", dtype={"origin_id": str, "destination_id": str})
    pd.testing.assert_frame_equal(bundle.flows.sort_values(key).reset_index(drop=True),
                                  flows[bundle.flows.columns].sort_values(key).reset_index(drop=True),
                                  check_dtype=False)
