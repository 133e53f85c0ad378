"""Map pieces of the report: municipal outlines for a bundle and the interactive map section."""

from __future__ import annotations

import html

__all__ = ["boundaries_of", "map_section"]


def boundaries_of(bundle):
    """Approximate outlines of the bundle's cities/municipalities (``bundle.areas`` index,
    :func:`studentflow.geo.boundaries.municipal_boundaries`), or None when there are none."""
    areas = getattr(bundle, "areas", None)
    if areas is None or len(areas) == 0:
        return None
    from studentflow.geo.boundaries import municipal_boundaries

    return municipal_boundaries(areas.index)


def map_section(result, bundle, outlines=None, labels=None) -> str:
    """``<h2>`` + explanation + the interactive map (plotly.js inlined), or "" without plotly.
    ``labels``: the bundle's :func:`~studentflow.report.names.school_labels`, when already made."""
    from studentflow.geo.boundaries import BOUNDARY_NOTE

    try:
        from studentflow.report.interactive import interactive_map
    except ImportError:  # plotly missing: the static PNG map remains
        return ""
    from studentflow.report.map_layers import MAX_SCHOOLS, aggregated

    note = (" " + BOUNDARY_NOTE) if outlines is not None else ""
    kinds = [k for k, f in (("public JHS", result.public_jhs), ("ESC schools", result.esc_schools))
             if aggregated(f, result.baseline)]
    if kinds:
        note += (f" With more than {MAX_SCHOOLS:,} schools in a layer, {' and '.join(kinds)} are drawn one marker "
                 "per city/municipality (sums of its schools; means over the draws); every school is in the "
                 "CSV files and schools.gpkg.")
    return ("<h2>Interactive map</h2><p>Public JHS coloured by seat utilisation (enrolment / seats; red above 1 = "
            "congested), today and after the scenario chosen in the menu (mean over the draws); ESC schools in "
            "blue, sized by slots. Hover over a school for its name, figures and 95 % intervals; drag to pan, "
            "scroll to zoom, click legend entries to hide layers. The map needs no network."
            f"{html.escape(note)}</p>" + interactive_map(result, bundle, boundaries=outlines, labels=labels))
