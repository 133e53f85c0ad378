"""report.figure_set.png_bytes: one draw, cropped to the content as savefig(bbox_inches="tight") crops."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from PIL import Image

from studentflow.report.figure_set import png_bytes


def _figure(x: float, y: float, size: float, width: float = 6.0) -> Figure:
    """A figure holding only a word at (x, y) (figure fraction)."""
    fig = Figure(figsize=(width, 4.0))
    fig.text(x, y, "studentflow", fontsize=size, fontweight="bold", ha="center", va="center")
    return fig


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _ink(rgba: np.ndarray) -> tuple[int, int]:
    """Rows and columns spanned by the non-white pixels."""
    dark = (rgba[..., :3] < 250).any(axis=2)
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@settings(max_examples=12)
@given(x=st.floats(0.25, 0.75), y=st.floats(0.2, 0.8), size=st.floats(6, 20))
def test_cropped_like_savefig_tight(x, y, size):
    """Inside the figure, the content's box plus the pad: the same image size and the same ink as
    savefig(bbox_inches="tight") gives (to a couple of pixels of rounding), wherever the content sits."""
    ours = _pixels(png_bytes(_figure(x, y, size), dpi=100))
    buf = io.BytesIO()
    _figure(x, y, size).savefig(buf, format="png", dpi=100, bbox_inches="tight")
    theirs = _pixels(buf.getvalue())
    assert ours.shape[0] < 400 and ours.shape[1] < 600  # cropped: smaller than the 600 x 400 figure
    assert abs(ours.shape[0] - theirs.shape[0]) <= 3 and abs(ours.shape[1] - theirs.shape[1]) <= 3
    ink, their_ink = _ink(ours), _ink(theirs)
    assert abs(ink[0] - their_ink[0]) <= 2 and abs(ink[1] - their_ink[1]) <= 2
    pad = 10  # 0.1 inch at 100 dpi: white all round the ink
    dark = (ours[..., :3] < 250).any(axis=2)
    assert not dark[:pad - 2].any() and not dark[-(pad - 2):].any()
    assert not dark[:, :pad - 2].any() and not dark[:, -(pad - 2):].any()


def test_one_draw(monkeypatch):
    """The figure is drawn once (savefig's tight box costs a second, layout-only draw)."""
    calls = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (calls.append(1), original(self, renderer))[1])
    png_bytes(_figure(0.5, 0.5, 12))
    assert len(calls) == 1


def test_content_past_the_edge_kept():
    """Content reaching past the figure's edge is kept whole (savefig's larger canvas), not cut off."""
    png = png_bytes(_figure(0.98, 0.5, 20, width=3.0), dpi=100)
    rgba = _pixels(png)
    assert rgba.shape[1] > 150  # the whole word, half of which lies right of the 3-inch figure
    rows, cols = _ink(rgba)
    assert cols < rgba.shape[1] - 10  # and the ink ends before the right pad
