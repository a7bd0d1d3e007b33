"""The report's data types, below every renderer: the frames plots and tables are drawn
from, a plot's files, a section of content, and the document both renderings show.
Data flows one way: load -> speedup/training frames -> :class:`ReportData` ->
sections and plots -> :class:`Document` -> Markdown and HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class ReportData:
    """What the plots and tables are drawn from (frames from speedup and training)."""

    speedups: pd.DataFrame
    split: pd.DataFrame
    runs: pd.DataFrame
    epochs: pd.DataFrame
    repeats: pd.DataFrame  # speedups across runs (empty unless a case ran more than once)
    model_steps: pd.DataFrame = field(default_factory=pd.DataFrame)  # meprop-bench model files
    model_layers: pd.DataFrame = field(default_factory=pd.DataFrame)  # their swapped layers


@dataclass
class PlotFile:
    """One plot of the report: its files, or why it was skipped."""

    name: str
    title: str
    png: Path | None = None
    svg: Path | None = None
    skipped: str | None = None


@dataclass
class Section:
    """A heading, paragraphs, bullets (each a bold lead and lines after it), and
    optionally a table with a ``caption`` line. ``level``: the heading's level (2 or 3);
    ``fold``: folded in the HTML until opened; ``figures``: the plots go here;
    ``anchor``: the HTML id."""

    title: str
    text: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    level: int = 2
    bullets: list[tuple[str, list[str]]] = field(default_factory=list)
    caption: str | None = None
    fold: bool = False
    figures: bool = False
    anchor: str | None = None


@dataclass(frozen=True)
class Document:
    """What both renderings show: title, header lines, sections, plots, profile links;
    ``out_dir`` is the report directory links are relative to."""

    title: str
    header: list[str]
    sections: list[Section]
    plots: list[PlotFile]
    profiles: dict[str, list[Path]]
    out_dir: Path
