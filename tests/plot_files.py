"""Stand-in plot files, for tests of what a report or the main job says rather than of
its images.

Saving a plot (tight-cropped, as PNG and as SVG) takes about half of a report's time.
Under :func:`stand_in_plot_files` each plot is still drawn by its function (so a plot
skipped for want of inputs, or one that fails to draw, shows as before) and rendered once
on its Agg canvas (so one that fails to render still fails), but the PNG and SVG written
are a line of text: not an image, so that a test of the real files (the session's report,
tests/report/conftest.py) cannot pass on them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from matplotlib.figure import Figure

STAND_IN = b"a stand-in: drawn and rendered, not saved (tests/plot_files.py)\n"


def _savefig(fig: Figure, fname, **_options) -> None:
    path = Path(fname)
    if path.suffix == ".png":  # once per plot: its PNG is saved before its SVG
        fig.canvas.draw()
    path.write_bytes(STAND_IN)


@contextmanager
def stand_in_plot_files() -> Iterator[None]:
    """Within: every ``Figure.savefig`` draws the figure and writes :data:`STAND_IN`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", _savefig)
        yield
