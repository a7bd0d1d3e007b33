"""Two renderings of the report's sections: ``summary.md`` (Markdown) and a
self-contained ``index.html``: plots embedded as base64 PNG, inline CSS and one inline
script (:data:`SORTER`, which sorts a table by the column whose header is clicked),
nothing loaded from elsewhere (its Content-Security-Policy forbids it), so it opens from
disk with no server. The detail sections are folded (``<details>``) until opened."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from meprop_bench.report.model import Document, PlotFile, Section
from meprop_bench.report.tables import markdown

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } .header { margin: 0.2em 0; color: #555; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.08em; margin: 1.2em 0 0.4em; }
ul.answer { padding-left: 1.2em; } ul.answer li { margin: 0.35em 0; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
table.sortable thead tr:last-child th { cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 0.8em; }
th[aria-sort=descending]::after { content: " \\25BC"; font-size: 0.8em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
details { margin: 0.3em 0; border-left: 3px solid #eee; padding-left: 0.6em; }
details > summary { cursor: pointer; } details > summary h3 { display: inline; }
details[open] > summary { margin-bottom: 0.4em; }
.caption { margin: 0.8em 0 0.2em; font-size: 0.9em; color: #444; }
.count { color: #777; font-size: 0.85em; margin-left: 0.5em; }
.skipped { color: #a60; font-size: 0.9em; }
"""

# Nothing may load from elsewhere: images are data: URIs, style and script are inline.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

# Click a column header (the last header row) of a table.sortable to sort its rows by
# that column, again to reverse. Cells that start with a number (2.13x [..], 57%, 1.2 ms,
# 0.8 s: times in seconds) sort as numbers, before text; "-" and empty cells sort last.
SORTER = """
(function () {
  "use strict";
  var UNIT = { us: 1e-6, ms: 1e-3, s: 1 };
  var NUMBER = /^([-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:e[-+]?\\d+)?)\\s*(us|ms|s|x|%|pts)?(?![\\w.])/i;
  function key(cell) {
    var text = cell ? cell.textContent.trim() : "";
    if (text === "" || text === "-") return null;
    var m = NUMBER.exec(text);
    if (!m) return text;
    return parseFloat(m[1]) * (UNIT[(m[2] || "").toLowerCase()] || 1);
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    if (typeof a === "number") return -1;
    if (typeof b === "number") return 1;
    return a.localeCompare(b, undefined, { numeric: true });
  }
  function sortBy(table, heads, col) {
    var th = heads[col];
    var up = th.getAttribute("aria-sort") !== "ascending";
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row) {
      return { row: row, key: key(row.cells[col]) };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) return (a.key === null) - (b.key === null);
      return up ? compare(a.key, b.key) : compare(b.key, a.key);
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, heads, col); });
    });
  });
})();
"""


def _drawn(doc: Document) -> list[PlotFile]:
    return [p for p in doc.plots if p.png is not None and p.svg is not None]


def to_markdown(doc: Document) -> str:
    """``summary.md``: the header lines, then each section (bullets, plot links, table)
    in order; the folded sections are plain subsections here."""
    parts = [f"# {doc.title}\n", *(f"{line}  " for line in doc.header), ""]
    for section in doc.sections:
        parts.append(f"{'#' * section.level} {section.title}\n")
        if not section.figures:
            parts.extend(f"{text}\n" for text in section.text)
        if section.bullets:
            parts.extend(f"- **{lead}** " + "  \n  ".join(lines) for lead, lines in section.bullets)
            parts.append("")
        if section.figures:
            parts.extend(
                f"![{p.title}]({p.png.relative_to(doc.out_dir)}) "
                f"([SVG]({p.svg.relative_to(doc.out_dir)}))\n"
                for p in _drawn(doc)
            )
            parts.extend(f"- {text}" for text in section.text)
            parts.append("")
        if section.caption:
            parts.append(f"{section.caption}\n")
        if section.table is not None:
            parts.append(markdown(section.table))
    if doc.profiles:
        parts.append("### Profiles\n")
        for case, files in doc.profiles.items():
            links = ", ".join(f"[{f.name}]({f})" for f in files) or "no files"
            parts.append(f"- {case}: {links}")
    return "\n".join(parts) + "\n"


def _img(plot: PlotFile, out_dir: Path) -> str:
    assert plot.png is not None and plot.svg is not None
    data = base64.b64encode(plot.png.read_bytes()).decode("ascii")
    svg = html.escape(str(plot.svg.relative_to(out_dir)))
    return (
        f'<figure id="{plot.name}"><img alt="{html.escape(plot.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(plot.title)} '
        f'(<a href="{svg}">SVG</a>)</figcaption></figure>'
    )


def anchor(section: Section) -> str:
    """The section's HTML id: its ``anchor``, else its title as a slug."""
    return section.anchor or re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")


def _table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>(none)</p>"
    return table.to_html(index=False, border=0, escape=True, na_rep="-", classes="sortable")


def _section(section: Section, doc: Document) -> str:
    esc = html.escape
    tag = f"h{section.level}"
    body = []
    if not section.figures:
        body.extend(f"<p>{esc(text)}</p>" for text in section.text)
    if section.bullets:
        items = (f"<li><strong>{esc(lead)}</strong> " + "<br>".join(map(esc, lines)) + "</li>"
                 for lead, lines in section.bullets)  # fmt: skip
        body.append('<ul class="answer">' + "".join(items) + "</ul>")
    if section.figures:  # its text: the plots not drawn, and why, after the others
        body.extend(_img(p, doc.out_dir) for p in _drawn(doc))
        if section.text:
            items = "".join(f"<li>{esc(text)}</li>" for text in section.text)
            body.append(f'<ul class="skipped">{items}</ul>')
    if section.caption:
        body.append(f'<p class="caption">{esc(section.caption)}</p>')
    if section.table is not None:
        body.append(_table(section.table))
    if not section.fold:
        return "\n".join([f'<{tag} id="{anchor(section)}">{esc(section.title)}</{tag}>', *body])
    rows = "" if section.table is None else f"{len(section.table)} rows"
    count = f'<span class="count">{rows}</span>' if rows else ""
    return "\n".join([
        f'<details id="{anchor(section)}"><summary><{tag}>{esc(section.title)}</{tag}>'
        f"{count}</summary>", *body, "</details>"])  # fmt: skip


def to_html(doc: Document) -> str:
    """``index.html``: the same content, plots embedded, detail sections folded, tables
    sortable by a click on a column header; nothing loaded from elsewhere."""
    esc = html.escape
    body = [
        f"<h1>{esc(doc.title)}</h1>",
        *(f'<p class="header">{esc(line)}</p>' for line in doc.header),
    ]
    body.extend(_section(section, doc) for section in doc.sections)
    if doc.profiles:
        items = []
        for case, files in doc.profiles.items():
            links = ", ".join(f'<a href="{esc(str(f))}">{esc(f.name)}</a>' for f in files)
            items.append(f"<li>{esc(case)}: {links or 'no files'}</li>")
        body.append(
            '<details id="profiles"><summary><h3>Profiles</h3></summary><ul>'
            + "".join(items)
            + "</ul></details>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(doc.title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SORTER}</script>\n</body></html>\n"
    )
