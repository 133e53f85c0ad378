"""Report: scenario results → files (HTML report, figures, CSV tables, GeoPackage).

- :func:`write_report` (:mod:`.write`), with :func:`atomic_write` and :func:`mask_lrns`.
- :mod:`.figures`: the matplotlib figures (imported when a report is written).
"""

from studentflow.report.write import atomic_write, mask_lrns, write_report

__all__ = ["write_report", "atomic_write", "mask_lrns"]
