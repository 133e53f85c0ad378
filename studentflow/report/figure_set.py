"""The report's PNG figures, rendered together: what :func:`~studentflow.report.write.write_report`
embeds in ``report.html`` and writes as ``fig_*.png``.

Rendering them needs matplotlib and only the run's results, so on small runs the report
renders them in a forked child process (:mod:`studentflow.forked`) while it writes the
CSV files, the GeoPackage and the interactive map; the bytes are the same either way.
"""

from __future__ import annotations

import base64
import io

__all__ = ["figure_set", "png_bytes"]


def png_bytes(fig, dpi: int = 130, pad_inches: float = 0.1) -> bytes:
    """``fig`` as PNG bytes (``dpi`` pixels per inch), cropped to its content.

    The figure is drawn once on an Agg canvas and the drawn pixels are cropped to the
    content's box (from the same renderer) plus ``pad_inches`` of white, as
    ``savefig(bbox_inches="tight")`` crops it; savefig draws twice (a layout pass, then
    the pixels of a figure resized to the box): the national report's six figures took
    0.4 s longer. Content reaching beyond the figure's edge cannot be cropped from its
    pixels: such a figure is saved by ``savefig`` as before.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    box = fig.get_tightbbox(canvas.get_renderer())
    width, height = fig.get_size_inches()
    slack = 1.0 / dpi  # a pixel: text extents are rounded
    buf = io.BytesIO()
    if box.x0 < -slack or box.y0 < -slack or box.x1 > width + slack or box.y1 > height + slack:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=pad_inches)
        return buf.getvalue()
    pixels = np.asarray(canvas.buffer_rgba())
    rows, cols = pixels.shape[:2]
    box = box.padded(pad_inches)  # the pad shows what is drawn there, as savefig's does; white past the edge
    x0, x1 = int(np.floor(box.x0 * dpi)), int(np.ceil(box.x1 * dpi))
    top, bottom = int(np.floor(rows - box.y1 * dpi)), int(np.ceil(rows - box.y0 * dpi))
    out = np.full((bottom - top, x1 - x0, 4), 255, dtype=np.uint8)
    a, b, c, d = max(top, 0), min(bottom, rows), max(x0, 0), min(x1, cols)
    out[a - top:b - top, c - x0:d - x0] = pixels[a:b, c:d]
    imsave(buf, out, format="png", dpi=dpi)
    return buf.getvalue()


def figure_set(result, *, models=None, truth=None, bundle=None, outlines=None, pairs=None, comparisons=None,
               truth_placements=None) -> tuple[dict, str]:
    """Every figure of the report, in the page's order, and the status-quo section's HTML.

    Parameters
    ----------
    result : ScenarioResult
    models, truth, bundle, pairs, comparisons, truth_placements
        As :func:`~studentflow.report.write.write_report` takes them (``models``: with the
        model used for the scenarios).
    outlines : GeoDataFrame, optional
        Municipal outlines for the static map (:func:`studentflow.report.maps.boundaries_of`).

    Returns
    -------
    figures : dict
        File name → (caption, PNG bytes).
    calibration_html : str
        The status-quo/calibration section (with ``fig_status_quo.png`` embedded), or "".
    """
    from studentflow.report import figures as rf

    figures: dict[str, tuple[str, bytes]] = {}
    if models:
        figures["fig_coefficients.png"] = (
            "Gravity coefficients with 95 % intervals. Negative distance and net-cost effects: "
            "learners go to nearer, cheaper ESC schools.", png_bytes(rf.coefficient_plot(models, truth)))
    figures["fig_placed.png"] = (
        "Learners placed in ESC schools per scenario (mean of the Monte Carlo draws, 95 % interval).",
        png_bytes(rf.placed_plot(result, comparisons)))
    figures["fig_utilisation.png"] = (
        "ESC slot utilisation per school: how many schools are full.", png_bytes(rf.utilisation_plot(result)))
    if bundle is not None and not result.public_jhs.empty:
        figures["fig_map.png"] = (
            "Public JHS seat utilisation before and after the scenario relieving most learners; "
            "ESC schools in blue." + (" Grey: approximate municipal outlines (generated, not official)."
                                      if outlines is not None else ""),
            png_bytes(rf.congestion_map(result, bundle, boundaries=outlines)))
    section = calibration_section(result, pairs, comparisons, truth_placements, figures)
    if "cost_vs_baseline_mean" in result.table:
        from studentflow.report.cost_figures import cost_effectiveness_plot

        figures["fig_cost_effectiveness.png"] = (
            "What each scenario buys: learners relieved from congested public JHS against added cost per school "
            "year, both versus the baseline in the same draw (95 % intervals).",
            png_bytes(cost_effectiveness_plot(result)))
    return figures, section


def calibration_section(result, pairs, comparisons, truth_placements, figures) -> str:
    """HTML of the status-quo/calibration section; adds ``fig_status_quo.png`` to ``figures``."""
    from studentflow.report.calibration import calibration_html, status_quo_scatter
    from studentflow.scenarios.calibrate import status_quo_fit

    if result.calibration is None and pairs is None:
        return ""
    png = png_bytes(status_quo_scatter(status_quo_fit(result, pairs)))
    figures["fig_status_quo.png"] = ("Observed vs status-quo ESC placements per school, 45° line.", png)
    return calibration_html(result, comparisons, truth_placements, base64.b64encode(png).decode())
