"""Take one recipe's finished runs out of an interrupted full-scale set's journal into a
journal of that recipe's set alone, so that `meprop-bench train --experiment full-scale
--recipe RECIPE --resume --out OUT` writes its result file from them (training only
what is missing). Used once for this report: see README.md beside this file.

Usage: python split_journal.py JOURNAL RECIPE OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meprop_bench.commands.train import build_parser, run_configs
from meprop_bench.training.journal import journal_path, run_key


def main(journal: str, recipe: str, out: str) -> None:
    lines = [json.loads(line) for line in Path(journal).read_text().splitlines()]
    header, runs = lines[0], lines[1:]
    configs = run_configs(build_parser().parse_args(["--experiment", "full-scale",
                                                     "--recipe", recipe]))  # fmt: skip
    keys = [run_key(c) for c in configs]
    kept = [r for r in runs if r["key"] in set(keys)]
    target = journal_path(Path(out))
    if target.exists():
        sys.exit(f"{target} exists; not replacing it")
    lines = [{**header, "runs": keys}, *kept]
    target.write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"{target}: {len(kept)} of {len(keys)} {recipe} runs")


if __name__ == "__main__":
    main(*sys.argv[1:])
