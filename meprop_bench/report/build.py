"""Building one report directory: inputs -> frames -> plots, tables, summary.md and
index.html under ``reports/<name>/``, refusing to replace another report's files."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from meprop_bench import __version__
from meprop_bench.errors import MePropInputError
from meprop_bench.report import headline, training
from meprop_bench.report import sections as sec
from meprop_bench.report.load import PathLike, find_inputs, load_benchmarks, load_trainings
from meprop_bench.report.load import machines as read_machines
from meprop_bench.report.model import Document, PlotFile, ReportData
from meprop_bench.report.render import to_html, to_markdown
from meprop_bench.report.speedup import across_runs, pair_speedups, time_split
from meprop_bench.report.your_model import load_models, model_sections

# A directory holding any of these is a report (or the main job's inputs for one).
REPORT_FILES = ("index.html", "summary.md")
RUN_FILES = ("bench.json", "training.json")


@dataclass
class Report:
    """Where a report was written and what it holds."""

    out_dir: Path
    index: Path
    summary: Path
    plots: list[PlotFile]
    benchmarks: list[Path]
    trainings: list[Path]
    models: list[Path]


def ensure_free(out_dir: Path, force: bool, files: Sequence[str] = REPORT_FILES) -> None:
    """Refuse (FileExistsError, exit 2 on the command line) when ``out_dir`` already
    holds any of ``files``, unless ``force``. Profiles alone do not count."""
    taken = [name for name in files if (out_dir / name).exists()]
    if taken and not force:
        raise FileExistsError(
            f"{out_dir} already holds a report ({', '.join(taken)}); choose another --name "
            f"or pass --force to replace it"
        )


def build_report(
    paths: Sequence[PathLike],
    out_dir: PathLike,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> Report:
    """Read the benchmark and training JSON in ``paths`` (files or directories) and
    write the report into ``out_dir``: ``plots/*.png|svg``, ``summary.md``,
    ``index.html``, and the tidy frames as ``speedups.csv`` (with
    ``speedups_across_runs.csv`` when a case was run more than once),
    ``best_strategies.csv`` (each method's best strategy at each case of every suite:
    what the answer's tables show for one) and ``training_runs.csv``."""
    out_dir = Path(out_dir)
    ensure_free(out_dir, force)
    inputs = find_inputs(paths)
    passed = f" ({len(inputs.ignored)} other JSON files passed over)" if inputs.ignored else ""
    progress(
        f"report: {len(inputs.benchmarks)} benchmark, {len(inputs.trainings)} training and "
        f"{len(inputs.models)} model files{passed}"
    )
    bench = load_benchmarks(inputs.benchmarks)
    pairing = pair_speedups(bench)
    epochs = load_trainings(inputs.trainings)
    model_steps, model_layers = load_models(inputs.models)
    if pairing.speedups.empty and epochs.empty and model_steps.empty:
        raise MePropInputError(
            "nothing to report: the benchmark files hold no sparse case paired with a dense "
            "one (only selection or non-meprop-bench benchmarks?) and there are no training runs"
        )
    runs, copies = training.drop_repeats(training.runs(epochs))
    if not copies.empty:
        epochs = epochs[epochs["run"].isin(runs["run"])]
    summary = training.summarize(runs)
    repeats = across_runs(pairing.speedups)
    data = ReportData(
        pairing.speedups, time_split(bench), runs, epochs, repeats, model_steps, model_layers
    )
    progress(f"report: {len(data.speedups)} speedups, {len(runs)} training runs")

    # Here, not above: the plotting stack (matplotlib, seaborn) takes seconds to import,
    # and the commands that import this module for its checks may never draw.
    from meprop_bench.report.plots import write_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    if force:
        shutil.rmtree(out_dir / "plots", ignore_errors=True)
    plots = write_plots(data, out_dir / "plots", progress)
    kinds = (
        {str(p): "benchmark" for p in inputs.benchmarks}
        | {str(p): "training" for p in inputs.trainings}
        | {str(p): "model" for p in inputs.models}
    )
    machines = read_machines([*inputs.benchmarks, *inputs.trainings, *inputs.models])
    details = [
        *sec.claim_sections(runs, copies),
        sec.inputs_section(machines, kinds),
        *sec.speedup_sections(data, pairing.unpaired),
        *sec.paper_sections(data, summary),
    ]
    answer = [] if bench.empty and runs.empty else sec.answer_sections(data, runs)
    sections = [
        *answer,
        *model_sections(model_steps, model_layers),
        sec.plots_section(plots),
        *sec.details_sections(details),
    ]
    profiles = sec.profile_links(out_dir)
    title = f"meprop-bench report: {out_dir.name}"
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    header = [
        sec.machine_line(machines),
        *filter(None, [sec.load_line(machines)]),
        f"Made {created} by meprop-bench {__version__} from {len(kinds)} input files.",
    ]
    doc = Document(title, header, sections, plots, profiles, out_dir)
    (out_dir / "summary.md").write_text(to_markdown(doc))
    (out_dir / "index.html").write_text(to_html(doc))
    data.speedups.to_csv(out_dir / "speedups.csv", index=False)
    headline.best_strategies(data.speedups).to_csv(out_dir / "best_strategies.csv", index=False)
    if not repeats.empty:
        repeats.to_csv(out_dir / "speedups_across_runs.csv", index=False)
    runs.drop(columns="kept", errors="ignore").to_csv(out_dir / "training_runs.csv", index=False)
    if not model_layers.empty:
        model_layers.drop(columns=["dense_rounds_s", "meprop_rounds_s"]).to_csv(
            out_dir / "model_layers.csv", index=False
        )
    return Report(
        out_dir,
        out_dir / "index.html",
        out_dir / "summary.md",
        plots,
        inputs.benchmarks,
        inputs.trainings,
        inputs.models,
    )
