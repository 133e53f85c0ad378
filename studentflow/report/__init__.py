"""Report: scenario results → files (HTML report, figures, CSV tables, GeoPackage).

- :func:`write_report` (:mod:`.write`), with :func:`atomic_write` and :func:`mask_lrns`.
- :mod:`.figures`: the matplotlib figures (imported when a report is written).
- :func:`explain` (:mod:`.explain`): one school's drill-down from a run's output folder.
- :mod:`.names` (school names and places, spreadsheet-safe CSV), :mod:`.provenance`
  (``run.json``), :mod:`.interactive` (the report's map).
"""

from studentflow.report.write import atomic_write, mask_lrns, write_report


def explain(school_id, out_dir="studentflow-output"):
    """Drill down on one school of a finished run (:func:`studentflow.report.explain.explain`)."""
    from studentflow.report.explain import explain as _explain

    return _explain(school_id, out_dir)


__all__ = ["write_report", "atomic_write", "mask_lrns", "explain"]
