"""variation.sh's runs in one table: per run, dense's and meProp's step time, the
speedup with its interval, and the other load; per condition, how far dense's step
moved between runs (largest / smallest). Usage: python variation_summary.py [FOLDER]"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def _model(doc: dict) -> tuple[float, float, str, float]:
    step = next(p for p in doc["parts"] if p["part"] == "step")
    speedup = f"{step['speedup']:.2f}x [{step['low']:.2f}-{step['high']:.2f}]"
    return step["dense_s"], step["meprop_s"], speedup, doc["machine"]["state"]["other_cores"]


def _suite(doc: dict) -> tuple[float, float, str, float]:
    by = {b["extra_info"]["method"] + "/" + b["extra_info"]["strategy"]
          + ("+sparse" if b["extra_info"].get("sparse_grad") else ""): b
          for b in doc["benchmarks"]}  # fmt: skip
    dense, native = by["dense/dense"], by["topk/native"]
    ratios = [a / b for a, b in zip(dense["stats"]["data"], native["stats"]["data"], strict=False)]
    speedup = f"{dense['stats']['median'] / native['stats']['median']:.2f}x (rounds: " + (
        f"{min(ratios):.2f}-{max(ratios):.2f})"
    )
    other = doc["machine_info"].get("state", {}).get("other_cores") or float("nan")
    return dense["stats"]["median"], native["stats"]["median"], speedup, other


def main(folder: Path) -> str:
    rows = ["| run | dense step ms | meProp (topk/native) step ms | speedup | other load "
            "(cores) |", "|---|---|---|---|---|"]  # fmt: skip
    dense_by: dict[str, list[float]] = defaultdict(list)
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stem):
        doc = json.loads(path.read_text())
        dense, sparse, speedup, other = (_suite if "benchmarks" in doc else _model)(doc)
        rows.append(f"| {path.stem} | {dense * 1e3:.2f} | {sparse * 1e3:.2f} | {speedup} "
                    f"| {other:.2f} |")  # fmt: skip
        dense_by[re.sub(r"-\d+$", "", path.stem)].append(dense)
    spread = [f"- {cond}: dense's step {min(v) * 1e3:.2f}-{max(v) * 1e3:.2f} ms over {len(v)} "
              f"runs, largest / smallest {max(v) / min(v):.2f}, median "
              f"{statistics.median(v) * 1e3:.2f} ms" for cond, v in dense_by.items()]  # fmt: skip
    return "\n".join(rows) + "\n\n" + "\n".join(spread)


if __name__ == "__main__":
    here = Path(__file__).parent / "variation"
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else here))
