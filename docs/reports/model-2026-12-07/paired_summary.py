"""paired.sh's runs in one table: per run and sparse case, the step speedup two ways —
dense's case median over the sparse case's (cases timed apart, as before schema 5) and
the median of per-round ratios against the dense step timed beside it (schema 5) — and
per case how far each moved over the runs. Usage: python paired_summary.py [FOLDER]"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def _label(info: dict) -> str:
    return f"{info['method']}/{info['strategy']}" + ("+sparse_grad" if info["sparse_grad"] else "")


def main(folder: Path) -> str:
    rows = ["| run | other load (cores) | case | dense case ms | dense beside ms | sparse ms "
            "| speedup, cases apart | speedup beside [95% interval] |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    apart: dict[str, list[float]] = defaultdict(list)
    beside: dict[str, list[float]] = defaultdict(list)
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stem):
        doc = json.loads(path.read_text())
        other = doc["machine_info"]["state"]["other_cores"]
        by = {_label(b["extra_info"]): b for b in doc["benchmarks"]}
        dense = by.pop("dense/dense")["stats"]["median"]
        for label, bench in sorted(by.items()):
            info, sparse = bench["extra_info"], bench["stats"]["median"]
            paired = sorted(info["paired_dense_s"])[len(info["paired_dense_s"]) // 2]
            apart[label].append(dense / sparse)
            beside[label].append(info["paired_speedup"])
            rows.append(
                f"| {path.stem} | {other:.2f} | {label} | {dense * 1e3:.2f} | {paired * 1e3:.2f} "
                f"| {sparse * 1e3:.2f} | {dense / sparse:.2f}x | {info['paired_speedup']:.2f}x "
                f"[{info['paired_low']:.2f}-{info['paired_high']:.2f}] |"
            )
    spread = ["| case | cases apart: range over runs | beside: range over runs |",
              "|---|---|---|"]  # fmt: skip
    for label in sorted(apart):
        a, b = apart[label], beside[label]
        spread.append(f"| {label} | {min(a):.2f}-{max(a):.2f}x ({max(a) / min(a):.2f}) "
                      f"| {min(b):.2f}-{max(b):.2f}x ({max(b) / min(b):.2f}) |")  # fmt: skip
    return "\n".join(rows) + "\n\n" + "\n".join(spread)


if __name__ == "__main__":
    here = Path(__file__).parent / "paired"
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else here))
