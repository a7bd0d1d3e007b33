"""The README's tables from this folder's `meprop-bench model` files (run.sh's names,
PRESET-METHOD-kK-tT.json): the whole step with its parts and page faults, then each
swapped layer in the step and alone. Usage: python table.py [FOLDER] > tables.md"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PRESETS = ["mlp", "transformer-mlp-512", "vit-b16-mlp", "transformer-mlp-2048", "llama-mlp-512"]


def _load(folder: Path) -> list[dict]:
    docs = [json.loads(p.read_text()) for p in sorted(folder.glob("*-t[0-9]*.json"))]
    p = lambda d: d["params"]  # noqa: E731
    return sorted(docs, key=lambda d: (p(d)["threads"], PRESETS.index(p(d)["model"]),
                                       p(d)["method"], p(d)["k"]))  # fmt: skip


def _x(value: float, low: float, high: float) -> str:
    return f"{value:.2f}x [{low:.2f}-{high:.2f}]"


def steps(docs: list[dict]) -> str:
    rows = ["| threads | preset | method | k/n | whole step [95%] | bound | forward | backward "
            "| optimizer | dense step ms | page faults a step, dense / meProp | other load "
            "(cores) |", "|" + "---|" * 12]  # fmt: skip
    for d in docs:
        p, parts = d["params"], {x["part"]: x for x in d["parts"]}
        step = parts["step"]
        flag = " (unstable)" if d["unstable"] else ""
        faults = (f"{step['dense_faults']:,.0f} / {step['meprop_faults']:,.0f}"
                  if step.get("dense_faults") is not None else "-")  # fmt: skip
        rows.append(
            f"| {p['threads']} | `{p['model']}` | {p['method']} | {p['k']:.0%} "
            f"| **{_x(step['speedup'], step['low'], step['high'])}**{flag} "
            f"| {d['step_bound']:.2f}x | {parts['forward']['speedup']:.2f}x "
            f"| {parts['backward']['speedup']:.2f}x | {parts['optimizer']['speedup']:.2f}x "
            f"| {step['dense_s'] * 1e3:,.1f} | {faults} "
            f"| {d['machine']['state']['other_cores']:.2f} |"
        )
    return "\n".join(rows)


def layers(docs: list[dict]) -> str:
    rows = ["| threads | preset | method | k/n | layer (rows x d_in -> n) | kernel | in step [95%] "
            "| alone [95%] | n/k | cos dW | cos dX |", "|" + "---|" * 11]  # fmt: skip
    for d in docs:
        p = d["params"]
        for lay in d["layers"]:
            iso = lay["isolated_speedup"]
            alone = "-" if iso is None else _x(iso, lay["isolated_low"], lay["isolated_high"])
            dx = "-" if lay["dx_cosine"] is None else f"{lay['dx_cosine']:.2f}"
            rows.append(
                f"| {p['threads']} | `{p['model']}` | {p['method']} | {p['k']:.0%} "
                f"| {lay['name']} ({lay['shape']}) | {lay['kernel']} "
                f"| {_x(lay['in_step_speedup'], lay['in_step_low'], lay['in_step_high'])} "
                f"| {alone} | {lay['ideal_speedup']:.0f} | {lay['dw_cosine']:.2f} | {dx} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    found = _load(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
    print("## The whole step\n\n" + steps(found) + "\n\n## Each swapped layer\n\n" + layers(found))
