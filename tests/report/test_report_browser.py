"""The report's page in a real browser: headless Chromium opens a copy of index.html with
a probe script added, which records errors (script errors, failed loads, blocked
requests, console.error), whether each image loaded, and what the table sorter does to
the rows when a column header is clicked, and writes that into the page; Chromium's
``--dump-dom`` hands the page back after its scripts ran. Skipped with a reason when no
Chromium is on PATH (Debian's package is ``chromium``; ``.ci/run`` installs it when it
can)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((path for path in map(shutil.which, BROWSERS) if path), None)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs headless Chromium on PATH (Debian: apt-get install chromium); none found",
    ),
]

# Runs first in <head>: collects every error, then on load checks the images and
# clicks the probe table's header twice, and writes the findings as JSON into
# <pre id="probe">.
PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(e.message || ("failed to load " + (e.target && (e.target.src || e.target.href))));
  }, true);
  document.addEventListener("securitypolicyviolation", function (e) {
    errors.push("blocked by CSP: " + e.violatedDirective + " " + e.blockedURI);
  });
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  function column(table) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[0].textContent;
    });
  }
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return { alt: img.alt, loaded: img.complete && img.naturalWidth > 0 };
    });
    var table = document.getElementById("probe-table");
    var th = table.tHead.rows[0].cells[0];
    th.click();
    var up = { rows: column(table), sort: th.getAttribute("aria-sort") };
    th.click();
    var down = { rows: column(table), sort: th.getAttribute("aria-sort") };
    var heads = 0;
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
      heads += t.tHead.rows[t.tHead.rows.length - 1].cells.length;
    });
    var bound = { titled: document.querySelectorAll("table.sortable th[title]").length,
                  heads: heads, tables: document.querySelectorAll("table.sortable").length };
    var pre = document.createElement("pre");
    pre.id = "probe";
    pre.textContent = JSON.stringify({ errors: errors, images: images, up: up, down: down,
                                      bound: bound });
    document.body.appendChild(pre);
  });
})();
</script>"""

# A table the page's sorter picks up like its own: times in ms and s, a speedup with
# its interval, text, and a missing value.
CELLS = ("1.5 s", "-", "900 ms", "2.5x [2.1-2.9x]", "native", "20 ms")
PROBE_TABLE = (
    '<table class="dataframe sortable" id="probe-table"><thead><tr><th>t</th></tr></thead>'
    "<tbody>" + "".join(f"<tr><td>{cell}</td></tr>" for cell in CELLS) + "</tbody></table>"
)


@pytest.fixture(scope="module")
def opened(built, tmp_path_factory):
    """The report of a CPU and a CUDA sweep and a training file (``built``, copied),
    opened in headless Chromium: (the page as written, the DOM after its scripts ran, the
    probe's findings, the console lines Chromium logged)."""
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(built, root / "out" / "r")
    page = (root / "out" / "r" / "index.html").read_text()
    probed = page.replace("<head>", "<head>" + PROBE, 1).replace(
        "\n<script>", "\n" + PROBE_TABLE + "\n<script>", 1
    )
    copy = root / "out" / "r" / "probed.html"  # beside index.html: the same relative links
    copy.write_text(probed)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={root / 'profile'}",
               "--enable-logging=stderr", "--v=0", "--dump-dom", copy.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(root)})  # fmt: skip
    dom = done.stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"no probe in the DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return page, dom, probe, console


def test_the_answer_comes_first(opened):
    _, dom, _, _ = opened
    answer = dom.index('id="answer"')
    assert answer < dom.index("<img") and answer < dom.index("<table")
    assert "<strong>unified top-k pays.</strong> Backward kernel: faster than dense" in dom
    assert re.search(r"<h2[^>]*>Answer</h2>", dom)
    assert dom.index("<h2") == answer - len("<h2 ")


def test_every_image_loads(opened):
    page, _, probe, _ = opened
    assert len(probe["images"]) == page.count("<img") > 0
    assert [image for image in probe["images"] if not image["loaded"]] == []


def test_no_errors_and_nothing_in_the_console(opened):
    _, _, probe, console = opened
    assert probe["errors"] == []
    assert console == []


def test_a_click_on_a_header_sorts_its_column(opened):
    _, _, probe, _ = opened
    assert probe["up"] == {
        "rows": ["20 ms", "900 ms", "1.5 s", "2.5x [2.1-2.9x]", "native", "-"],
        "sort": "ascending",
    }
    assert probe["down"] == {
        "rows": ["native", "2.5x [2.1-2.9x]", "1.5 s", "900 ms", "20 ms", "-"],
        "sort": "descending",
    }


def test_the_sorter_takes_every_table_of_the_page(opened):
    page, _, probe, _ = opened
    tables = page.count('<table class="dataframe sortable">') + 1  # and the probe's
    assert probe["bound"]["tables"] == tables > 5
    assert probe["bound"]["titled"] == probe["bound"]["heads"]


def test_the_detail_tables_are_folded(opened):
    _, dom, _, _ = opened
    details = dom[dom.index('id="details"') :]
    folds = re.findall(r"<details[^>]*>", details)
    assert len(folds) >= 5 and not any(" open" in fold for fold in folds)
    assert details.count("<table") == details.count('class="dataframe sortable"')
