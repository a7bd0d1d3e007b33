"""The report's answer, first: on each device of each machine, does meProp pay off,
and by how much?

:func:`best_strategies` picks, for each method at each shape, the strategy with the
highest median speedup over dense; :func:`answers` says in one sentence per method what
that comes to; :func:`claim_summary` shortens the training verdicts to one row per
claim. All three are pure functions of the report's frames (no rendering here).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from meprop_bench.report.claims import CLAIM_NAMES

# The methods in the order the answer names them, and what to call them.
METHODS = {
    "unified": "unified top-k",
    "topk": "per-example top-k",
    "randk": "per-example random-k",
}
# The suites in the order the answer uses them; the first one present is the lead.
SUITES = {
    "backward": "backward kernel",
    "layer": "layer backward (autograd)",
    "paper": "paper shapes",
    "train_step": "training step",
}
WHERE = ["machine", "device_name"]
SETTINGS = ["grads", "dtype", "threads", "paper_shape"]
SHAPE = ["B", "d_in", "n", "hidden", "k"]
FASTER, SLOWER, UNCLEAR, UNSTABLE = "faster", "slower", "unclear", "unstable"
RERUN = "rerun on a quiet machine"
PAYS, SOME, NO_GAIN, DOES_NOT_PAY = (
    "pays",
    "pays at some shapes",
    "no clear gain",
    "does not pay",
)


def _call(low: float, high: float) -> str:
    """faster when the whole interval lies above 1x, slower when below, else unclear
    (an interval that holds 1x, or none: fewer than 2 samples a side)."""
    if math.isfinite(low) and low > 1:
        return FASTER
    if math.isfinite(high) and high < 1:
        return SLOWER
    return UNCLEAR


def suspect(frame: pd.DataFrame) -> pd.Series:
    """Why each speedup is not a finding: unstable (its reasons) or above its bound (a
    measurement error); empty text for a trustworthy one (see meprop_bench.stability)."""
    unstable = frame.get("unstable", pd.Series("", index=frame.index)).fillna("")
    above = frame.get("above_bound", pd.Series(False, index=frame.index)).fillna(False)
    bound = frame.get("ideal", pd.Series(np.nan, index=frame.index))
    texts = []
    for why, over, ideal in zip(unstable, above, bound, strict=True):
        parts = [f"above its bound {_x(ideal)}: a measurement error"] if over else []
        texts.append("; ".join(parts + ([why] if why else [])))
    return pd.Series(texts, index=frame.index, dtype=object)


def best_strategies(speedups: pd.DataFrame) -> pd.DataFrame:
    """One row per machine, device, suite, method, settings (dY source, dtype, threads,
    paper shape) and shape (B, d_in, n, hidden, k): the strategy with the highest median
    speedup over dense there among the trustworthy ones (``strategy``, with
    ``+sparse_grad`` for a training step stepping row-sparse gradients), its ``speedup``,
    ``ci_low``/``ci_high``, ``ideal``, ``efficiency``, how many strategies were compared
    (``strategies``) and ``call``: faster (interval above 1x), slower (below), unclear, or
    unstable when every strategy there is noise (``suspect`` says why: see
    :func:`suspect`).

    A case measured in several input files counts once, from its latest run (the
    across-runs table has every run). Methods not in :data:`METHODS` are left out."""
    columns = [*WHERE, "suite", "method", *SETTINGS, *SHAPE, "k_over_n", "strategy",
               "speedup", "ci_low", "ci_high", "ideal", "efficiency", "strategies", "call",
               "suspect", "source"]  # fmt: skip
    if speedups.empty:
        return pd.DataFrame(columns=columns)
    frame = speedups[speedups["method"].isin(list(METHODS)) & speedups["suite"].isin(SUITES)]
    frame = frame.assign(strategy=frame["kernel"].str.split("/", n=1).str[1])
    frame = frame.assign(suspect=suspect(frame))
    key = [*WHERE, "suite", "method", *SETTINGS, *SHAPE]
    latest = frame.sort_values(["datetime", "source"], na_position="first", kind="stable")
    latest = latest.drop_duplicates([*key, "strategy"], keep="last")
    groups = latest.groupby(key, dropna=False, sort=False)
    counts = groups["strategy"].transform("nunique")
    best = latest.assign(strategies=counts, _noise=latest["suspect"] != "")
    best = best.sort_values(["_noise", "speedup"], ascending=[True, False], kind="stable")
    best = best.drop_duplicates(key, keep="first")
    calls = list(map(_call, best["ci_low"], best["ci_high"]))
    best = best.assign(
        call=[UNSTABLE if n else c for n, c in zip(best["_noise"], calls, strict=True)]
    )
    best = best.assign(
        _suite=best["suite"].map(list(SUITES).index),
        _method=best["method"].map(list(METHODS).index),
    )
    best = best.sort_values(
        [*WHERE, "_suite", "_method", *SETTINGS, "B", "d_in", "n", "hidden", "k"],
        na_position="first",
        kind="stable",
    )
    return best[columns].reset_index(drop=True)


def _num(value: float) -> str:
    """Two decimals below 10 (0.67, 2.00), one below 100 (11.0), none above (102)."""
    return f"{value:.{2 if abs(value) < 10 else 1 if abs(value) < 100 else 0}f}"


def _x(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{_num(value)}x"


def share(value: float) -> str:
    """k/n as a percentage, two significant digits: 0.01 -> 1%, 0.00977 -> 0.98%."""
    return "-" if not math.isfinite(value) else f"{value * 100:.2g}%"


def interval(low: float, high: float) -> str:
    """``low-highx``, or "no interval" (fewer than 2 samples a side)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return f"{_num(low)}-{_num(high)}x"


def _varying(frame: pd.DataFrame) -> list[str]:
    """The settings that take more than one value in ``frame``."""
    return [c for c in ("grads", "dtype", "threads") if frame[c].nunique(dropna=False) > 1]


def shape_text(row: pd.Series, varying: list[str] = ()) -> str:
    """A case's shape in words (``B=32, n=1024``; d_in when it differs from n; a paper
    shape by its name; a training step by its hidden width), with ``varying`` settings."""
    parts = []
    if row["suite"] == "train_step":
        parts += [f"h={int(row['hidden'])}", f"B={int(row['B'])}", f"k={int(row['k'])}"]
    else:
        if isinstance(row["paper_shape"], str):
            parts.append(row["paper_shape"])
        parts.append(f"B={int(row['B'])}")
        if row["d_in"] != row["n"]:
            parts.append(f"d_in={int(row['d_in'])}")
        parts.append(f"n={int(row['n'])}")
    for name in varying:
        value = row[name]
        if name == "threads":
            parts.append("default threads" if pd.isna(value) else f"{int(value)} threads")
        elif name == "grads":
            parts.append(f"{value} dY")
        else:
            parts.append(str(value))
    return ", ".join(parts)


def _case(row: pd.Series, varying: list[str]) -> str:
    """Where a speedup was measured: strategy, k/n (or k), shape, ideal and efficiency."""
    at = f"k={int(row['k'])}" if row["suite"] == "train_step" else f"k/n={share(row['k_over_n'])}"
    ideal = "bound" if row["suite"] == "train_step" else "ideal"
    eff = "-" if not math.isfinite(row["efficiency"]) else f"{row['efficiency']:.0%}"
    where = shape_text(row, varying)
    if row["suite"] == "train_step":
        where = ", ".join(p for p in where.split(", ") if not p.startswith("k="))
    return f"{row['strategy']} at {at}, {where}; {ideal} {_x(row['ideal'])}, efficiency {eff}"


def word(calls: pd.Series) -> str:
    """A method's verdict from its shapes' calls, unstable ones not counted: pays (faster
    at every shape), pays at some shapes, does not pay (slower at every shape), no clear
    gain, or unstable when no shape was measured cleanly."""
    calls = calls[calls != UNSTABLE]
    if calls.empty:
        return f"{UNSTABLE}: {RERUN}"
    counts = calls.value_counts()
    faster, slower = counts.get(FASTER, 0), counts.get(SLOWER, 0)
    if faster == len(calls):
        return PAYS
    if faster:
        return SOME
    return DOES_NOT_PAY if slower == len(calls) else NO_GAIN


def _noise(rows: pd.DataFrame) -> str:
    """The clause naming shapes left uncounted as noise, or nothing."""
    count = int((rows["call"] == UNSTABLE).sum())
    if not count:
        return ""
    return f"; {count} unstable, not counted ({RERUN})"


def _counted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["call"] != UNSTABLE]


def _tally(rows: pd.DataFrame, against: str = " than dense") -> str:
    """How many shapes were faster and slower, of those measured cleanly, and how many
    were noise; only the noise when no shape was clean (never "faster at 0 of 0")."""
    counted = _counted(rows)
    if counted.empty:
        shapes = "shape" if len(rows) == 1 else "shapes"
        return f"{len(rows)} unstable {shapes}, not counted ({RERUN})"
    counts = counted["call"].value_counts()
    shapes = "" if against == "" else " shape" if len(counted) == 1 else " shapes"
    text = f"faster{against} at {counts.get(FASTER, 0)} of {len(counted)}{shapes}"
    if counts.get(SLOWER, 0):
        text += f", slower at {counts[SLOWER]}"
    return text + _noise(rows)


def _lead(rows: pd.DataFrame, varying: list[str]) -> str:
    """The lead suite's clause: the tally, the best shape and the worst (of the shapes
    measured cleanly)."""
    text = _tally(rows)
    rows = _counted(rows)
    if rows.empty:
        return text
    top = rows.loc[rows["speedup"].idxmax()]
    text += f"; best {_x(top['speedup'])} [{interval(top['ci_low'], top['ci_high'])}]"
    text += f" ({_case(top, varying)})"
    if len(rows) > 1:
        low = rows.loc[rows["speedup"].idxmin()]
        text += f", worst {_x(low['speedup'])} ({_case(low, varying)})"
    return text


def _brief(rows: pd.DataFrame) -> str:
    """Another suite's clause: the tally and the best speedup with its interval (of the
    shapes measured cleanly)."""
    counted = _counted(rows)
    text = _tally(rows, against="")
    if counted.empty:
        return text
    top = counted.loc[counted["speedup"].idxmax()]
    text += f", best {_x(top['speedup'])} [{interval(top['ci_low'], top['ci_high'])}]"
    if top["suite"] == "train_step":
        text += f" (bound {_x(top['ideal'])})"
    return text


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def answers(best: pd.DataFrame) -> pd.DataFrame:
    """One row per machine, device and method of :func:`best_strategies`: ``suite``
    (the lead suite, the first of :data:`SUITES` present on that device), ``word``
    (:func:`word` over the lead suite's shapes), ``lead`` (the method and its word) and
    ``detail``: the lead suite's tally, best and worst shape, ``others``: a clause per
    other suite (tally and best); ``sentence`` is the three together."""
    columns = [*WHERE, "method", "suite", "word", "lead", "detail", "others", "sentence"]
    rows = []
    for (machine, device), here in best.groupby(WHERE, sort=False):
        lead = next(s for s in SUITES if (here["suite"] == s).any())
        varying = _varying(here[here["suite"] == lead])
        for method in METHODS:
            mine = here[here["method"] == method]
            if mine.empty:
                continue
            main = mine[mine["suite"] == lead]
            detail = _upper(f"{SUITES[lead]}: {_lead(main, varying)}.") if len(main) else ""
            clauses = [
                f"{name}: {_brief(mine[mine['suite'] == suite])}"
                for suite, name in SUITES.items()
                if suite != lead and (mine["suite"] == suite).any()
            ]
            others = _upper("; ".join(clauses) + ".") if clauses else ""
            verdict = word(main["call"]) if not main.empty else word(mine["call"])
            head = f"{METHODS[method]} {verdict}."
            sentence = " ".join(part for part in (head, detail, others) if part)
            rows.append([machine, device, method, lead, verdict, head, detail, others,
                         sentence])  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _efficiency(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0%}"


SETTING_NAMES = {"grads": "dY", "dtype": "dtype", "threads": "threads"}
PER_METHOD = ("best strategy", "speedup [95%]", "efficiency")


def shape_table(best: pd.DataFrame, suite: str) -> pd.DataFrame:
    """``best`` (one device's rows) as a display table for ``suite``: one row per shape,
    for each method its best strategy, speedup with 95% interval and efficiency. Columns
    are two-level: ("", shape column) and (method, one of :data:`PER_METHOD`)."""
    rows = best[best["suite"] == suite]
    if rows.empty:
        return pd.DataFrame()
    varying = _varying(rows)
    methods = [m for m in METHODS if (rows["method"] == m).any()]
    step = suite == "train_step"
    out = []
    for _, group in rows.groupby([*SETTINGS, *SHAPE], dropna=False, sort=False):
        first = group.iloc[0]
        line: dict[tuple[str, str], object] = {}
        if isinstance(first["paper_shape"], str):
            line["", "shape"] = first["paper_shape"]
        for name in varying:
            line["", SETTING_NAMES[name]] = shape_text(first, [name]).rsplit(", ", 1)[-1]
        if step:
            line["", "hidden"] = int(first["hidden"])
        line["", "B"] = int(first["B"])
        if not step:
            line["", "d_in"], line["", "n"] = int(first["d_in"]), int(first["n"])
        line["", "k"] = int(first["k"])
        if not step:
            line["", "k/n"] = share(first["k_over_n"])
        line["", "bound" if step else "ideal"] = _x(first["ideal"])
        for method in methods:
            mine = group[group["method"] == method]
            cells = ["-", "-", "-"]
            if not mine.empty:
                m = mine.iloc[0]
                flag = f" ({m['suspect']})" if m.get("suspect") else ""
                cells = [
                    m["strategy"],
                    f"{_x(m['speedup'])} [{interval(m['ci_low'], m['ci_high'])}]{flag}",
                    _efficiency(m["efficiency"]),
                ]
            line |= {(METHODS[method], what): c for what, c in zip(PER_METHOD, cells, strict=True)}
        out.append(line)
    table = pd.DataFrame(out)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    if ("", "d_in") in table and (table["", "d_in"] == table["", "n"]).all():
        table = table.drop(columns=[("", "d_in")])
    return table


ALWAYS_SHOWN = ("data", "train_size", "recipe")  # a claim column names these even when fixed


def _setting_part(column: str, value: object) -> str:
    if column == "train_size":
        return "all train images" if pd.isna(value) else f"{int(value):,} train images"
    if column == "recipe":
        return f"{value} recipe"
    names = {"batch_size": "B=", "layers": "layers=", "epochs": "epochs="}
    return f"{names.get(column, '')}{value}"


def _setting_label(row: pd.Series, varying: list[str]) -> str:
    return ", ".join(_setting_part(c, row[c]) for c in varying)


def claim_summary(verdicts: pd.DataFrame, setting: list[str]) -> pd.DataFrame:
    """The training verdicts (:func:`meprop_bench.report.claims.verdicts`) cut to one
    row per claim, one column per setting (``setting``'s columns that vary, with the data
    set and recipe always): a claim of several parts by its overall row, a one-part claim
    by its verdict with the difference and interval (points)."""
    if verdicts.empty:
        return pd.DataFrame()
    frame = verdicts.assign(letter=verdicts["claim"].str.extract(r"^\((\w)\)", expand=False))
    varying = [c for c in setting if c in ALWAYS_SHOWN or frame[c].nunique(dropna=False) > 1]
    frame = frame.assign(where=frame.apply(_setting_label, axis=1, varying=varying))
    last = frame.groupby(["where", "letter"], sort=False).tail(1)
    names = last.drop_duplicates("letter").set_index("letter")["claim"]
    table = pd.DataFrame({"claim": names.to_numpy()}, index=names.index)
    for where, rows in last.groupby("where", sort=False):
        cells = {}
        for _, row in rows.iterrows():
            cell = row["verdict"]
            if row.get("caveat"):
                cell += f" {row['caveat']}"
            if row["95% interval"] != "-":
                diff = row["difference (points)"].rsplit(" = ", 1)[-1]
                cell += f" ({diff} pts, 95% {row['95% interval']})"
            cells[row["letter"]] = cell
        table[where] = pd.Series(cells)
    return table.fillna("-").reset_index(drop=True)


def _claim_rows(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Each claim's deciding row per setting: the overall row of a claim of parts."""
    frame = verdicts.assign(letter=verdicts["claim"].str.extract(r"^\((\w)\)", expand=False))
    setting = [c for c in frame.columns if c in ("data", "recipe", "train_size", "epochs")]
    return frame.groupby([*setting, "letter"], sort=False, dropna=False).tail(1)


def _sizes(values: list[int]) -> str:
    return ", ".join(f"{v:,}" for v in values)


def size_sentences(verdicts: pd.DataFrame) -> list[str]:
    """One sentence per claim: whether its verdict depends on the training-set size (the
    same word at every size measured, per data set and recipe, or not), naming the
    largest size measured."""
    if verdicts.empty or "train_size" not in verdicts:
        return []
    rows = _claim_rows(verdicts[verdicts["train_size"].notna()])
    sentences = []
    for letter, claim in rows.groupby("letter", sort=True):
        name = CLAIM_NAMES.get(letter, claim["claim"].iloc[-1])
        largest = int(claim["train_size"].max())
        parts, depends = [], False
        for (data, recipe), one in claim.groupby(["data", "recipe"], sort=False):
            by_size = one.sort_values("train_size")
            words = dict(zip(by_size["train_size"].astype(int), by_size["verdict"], strict=True))
            if len(words) == 1:
                size, word = next(iter(words.items()))
                parts.append(f"{word} on {size:,} {data} images ({recipe})")
            elif len(set(words.values())) == 1:
                parts.append(f"{next(iter(words.values()))} at every size measured "
                             f"({_sizes(list(words))} {data} images, {recipe})")  # fmt: skip
            else:
                depends = True
                shown = "; ".join(f"{w} at {s:,}" for s, w in words.items())
                parts.append(f"{shown} {data} images ({recipe})")
        sizes = sorted(set(claim["train_size"].astype(int)))
        if len(sizes) == 1:
            lead = f"{name}: measured at one training-set size, its dependence on size unknown"
        elif depends:
            lead = f"{name}: the verdict depends on the training-set size"
        else:
            lead = f"{name}: the verdict does not depend on the training-set size"
        sentences.append(f"{lead} (largest measured: {largest:,} images): {'; '.join(parts)}.")
    return sentences
