"""What a synthetic region's known truth (``truth/`` beside its manifest) tells the report.

:func:`synthetic_truth`: the known gravity coefficients; :func:`truth_placements`: the
learners the oracle places per scenario. Both None for real data.
"""

from __future__ import annotations

from pathlib import Path

from studentflow.errors import DataError

__all__ = ["synthetic_truth", "truth_placements"]


def synthetic_truth(manifest=None) -> dict | None:
    """Known gravity coefficients of a synthetic region (``truth/params.json`` beside the manifest;
    the bundled sample by default), or None for real data."""
    import json

    from studentflow.paths import sample_manifest

    try:
        path = Path(manifest) if manifest is not None else sample_manifest()
    except DataError:
        return None
    params = (path if path.is_dir() else path.parent) / "truth" / "params.json"
    if not params.is_file():
        return None
    try:
        data = json.loads(params.read_text(encoding="utf-8"))
        return {**{k: float(v) for k, v in data["params"].items()}, "alpha": float(data["alpha"])}
    except (ValueError, KeyError, TypeError):
        return None


def truth_placements(manifest, scenarios, draws, seed):
    """Learners placed per scenario in a synthetic world (``truth/`` beside the manifest),
    when every scenario uses only the levers the oracle simulates (subsidy, capacity); else None."""
    from studentflow.paths import sample_manifest
    from studentflow.scenarios.spec import Scenario

    try:
        path = Path(manifest) if manifest is not None else sample_manifest()
    except DataError:
        return None
    folder = (path if path.is_dir() else path.parent) / "truth"
    plain = Scenario("plain")
    same = ("subsidy_by_tier", "subsidy_targeted", "add_slots", "add_slots_to", "scale_slots", "move_slots",
            "radius_km", "pool", "method", "add_slots_at", "subsidy_at")
    if not (folder / "pairs.csv").is_file() or any(
            getattr(s, k) != getattr(plain, k) for s in scenarios for k in same):
        return None
    from studentflow.synth.oracle import oracle_placements

    return oracle_placements(folder, scenarios, draws=max(1, min(draws, 20)), seed=seed)
