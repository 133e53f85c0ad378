"""Validation of the canonical tables (pandera): types, ranges and keys.

pandera registers its pandas checks on the first validation, and with them its data
synthesis strategies, which import hypothesis when it is installed (0.3 s, a third of
the sample's ingest of one year). studentflow synthesises nothing with pandera, so the
first validation registers the checks with hypothesis hidden, unless hypothesis is
already imported (a test session): pandera then behaves as when hypothesis is absent.
"""

from __future__ import annotations

import sys

import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from studentflow.errors import DataError
from studentflow.schema import ALL_REGIONS, GRADES, LEDGER_ACTIONS, OFFERINGS, SUBSIDY_TIERS

_ID = pa.Check.str_matches(r"^\d{6}$")
_TEXT = dict(dtype=None, nullable=False)


def _count(nullable: bool = False) -> pa.Column:
    return pa.Column("int64", pa.Check.ge(0), nullable=nullable)


SCHOOLS_SCHEMA = pa.DataFrameSchema(
    {
        "name": pa.Column(**_TEXT),
        "sector": pa.Column(checks=pa.Check.isin(["public", "private"]), **_TEXT),
        "offering": pa.Column(checks=pa.Check.isin(list(OFFERINGS.values())), **_TEXT),
        "region": pa.Column(checks=pa.Check.isin(list(ALL_REGIONS)), **_TEXT),
        "province": pa.Column(**_TEXT),
        "municipality": pa.Column(**_TEXT),
        "psgc_code": pa.Column(checks=pa.Check.str_matches(r"^(\d{10})?$"), **_TEXT),
        **{f"enrol_g{g}": _count() for g in GRADES},
        "jhs_enrolment": _count(),
        "jhs_seats": pa.Column("float64", pa.Check.ge(0), nullable=True),
        "jhs_seats_imputed": pa.Column("bool"),
        "esc": pa.Column("bool"),
        "esc_slots": _count(),
        "esc_slots_billed": _count(),
        "tuition": pa.Column("float64", pa.Check.ge(0), nullable=True),
        "esc_rating": pa.Column("float64", pa.Check.in_range(1, 8), nullable=True),
    },
    index=pa.Index(None, _ID, unique=True, name="school_id"),
    strict=False,
)

FLOWS_SCHEMA = pa.DataFrameSchema(
    {
        "origin_id": pa.Column(checks=_ID, **_TEXT),
        "destination_id": pa.Column(checks=_ID, **_TEXT),
        "learners": pa.Column("int64", pa.Check.gt(0)),
        "esc_beneficiaries": _count(),
    },
    checks=[pa.Check(lambda d: d["esc_beneficiaries"] <= d["learners"], name="beneficiaries<=learners")],
    unique=["origin_id", "destination_id"],
    strict=True,
)

AREAS_SCHEMA = pa.DataFrameSchema(
    {
        "region": pa.Column(**_TEXT),
        "province": pa.Column(**_TEXT),
        "municipality": pa.Column(**_TEXT),
        "city_class": pa.Column(checks=pa.Check.isin(["HUC", "CC", "ICC", "Mun"]), **_TEXT),
        "population": _count(),
        "lgu_revenue": pa.Column("float64", pa.Check.ge(0)),
        "lgu_revenue_imputed": pa.Column("bool"),
    },
    index=pa.Index(None, pa.Check.str_matches(r"^\d{10}$"), unique=True, name="psgc_code"),
)

SUBSIDY_SCHEMA = pa.DataFrameSchema(
    {"tier": pa.Column(checks=pa.Check.isin(list(SUBSIDY_TIERS)), **_TEXT),
     "amount": pa.Column("float64", pa.Check.gt(0))},
    index=pa.Index(None, _ID, unique=True, name="school_id"),
)

LEDGER_SCHEMA = pa.DataFrameSchema(
    {
        "source": pa.Column(**_TEXT), "file": pa.Column(**_TEXT),
        "row": pa.Column("int64", pa.Check.ge(0)),
        "school_id": pa.Column(checks=pa.Check.str_matches(r"^(\d{6})?$"), **_TEXT),
        "action": pa.Column(checks=pa.Check.isin(list(LEDGER_ACTIONS)), **_TEXT),
        "reason": pa.Column(checks=pa.Check(lambda s: ~s.str.contains(r"\d{12}")), **_TEXT),
    },
    strict=True,
)

SCHEMAS = {"schools": SCHOOLS_SCHEMA, "flows": FLOWS_SCHEMA, "areas": AREAS_SCHEMA,
           "subsidy": SUBSIDY_SCHEMA, "ledger": LEDGER_SCHEMA}


def validate_tables(tables: dict) -> None:
    """Check every canonical table; raise :class:`DataError` naming table and failure."""
    _register_checks()
    for name, schema in SCHEMAS.items():
        df = tables[name]
        if name == "schools":
            df = df.drop(columns="geometry")
        try:
            schema.validate(df, lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            cases = getattr(exc, "failure_cases", None)
            detail = cases.head(5).to_string() if cases is not None else str(exc)
            raise DataError(f"canonical table {name!r} failed validation:\n{detail}") from None


def _register_checks() -> None:
    """pandera's pandas checks registered without importing hypothesis (module text)."""
    if "hypothesis" in sys.modules or "pandera.backends.pandas.builtin_checks" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment] -- "import hypothesis" fails: pandera's fallback
    try:
        import pandera.backends.pandas.builtin_checks  # noqa: F401 -- what registering imports
    finally:
        del sys.modules["hypothesis"]
