"""Ingestion: raw government files (named in a manifest) → a canonical, validated Bundle.

``load_bundle(manifest=None, *, year=None, client=None)`` (:mod:`.load`) reads the
``[[source]]`` entries of one school year of a ``manifest.toml`` (default the latest;
:func:`manifest_years` lists them) with one reader per source kind (:mod:`.readers`),
harmonises them (:mod:`.harmonise`, :mod:`.flows`), validates the canonical tables
(:mod:`.validate`) and returns a :class:`studentflow.schema.Bundle` whose ledger records
every raw record dropped, merged, corrected, imputed or remapped. Learner reference
numbers are read but never leave this package.

``load_panel(manifest=None, *, client=None)`` loads every school year as a
:class:`studentflow.schema.Panel`: the same school under two IDs (linked by the
``school_id_crosswalk``) is one school, and its ``identity`` table says which ID each
year's files used. Which sources serve which year: :mod:`.years`.

``check_manifest(manifest)`` is the dry run (:mod:`.check`): what each source holds,
how its columns matched, and the problems, without raising.

Learner-level files (transitions, ESC billing) are streamed: each is read, validated and
compacted to integer arrays on its own (:mod:`.learners`), on Dask workers when a
``client`` is given (:mod:`.learners_dask`); the result is the same either way.
"""

from __future__ import annotations

from studentflow.ingest.check import CheckReport, check_manifest
from studentflow.ingest.load import load_bundle, load_panel, manifest_years
from studentflow.ingest.manifest import KINDS, Source, read_manifest
from studentflow.schema import Bundle, Panel

__all__ = ["load_bundle", "load_panel", "manifest_years", "Panel", "Bundle", "check_manifest", "CheckReport",
           "read_manifest", "KINDS", "Source"]
