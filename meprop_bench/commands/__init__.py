"""The console script ``meprop-bench``: one thin module per command.

``meprop-bench COMMAND [options]`` runs ``meprop_bench.commands.COMMAND.main``; each
command parses its options, calls one engine and prints. ``python -m meprop_bench.X``
(for X = check, train, report, gate, ab, profile, recover) and ``python -m meprop_bench``
(the main job) are the same commands under their older names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from meprop_bench import __version__
from meprop_bench.commands.common import run_main

# Each command and the one line that says what it does, in the order a user meets them.
COMMANDS = {
    "run": "the main job: the quick benchmark sweep, the quick training set and the report",
    "check": "dense against every sparsified backward at one shape, timed in one run",
    "model": "training steps of a whole model (presets or yours), dense against meProp",
    "train": "train the paper's MNIST MLP, dense or meProp, under the paper's recipes",
    "report": "turn benchmark and training JSON into plots, tables and an HTML page",
    "gate": "fail a change that makes the benchmarks slower, when the samples show it",
    "ab": "benchmark a baseline revision and the working tree, interleaved, for the gate",
    "profile": "where the time of one benchmark case goes (torch.profiler and py-spy)",
    "recover": "turn an interrupted sweep's partial results into benchmark JSON",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()]
    return "\n".join(
        [
            "usage: meprop-bench COMMAND [options]",
            "",
            "Does sparsified back-propagation (meProp) pay off on this machine, and by how much?",
            "",
            "commands:",
            *lines,
            "",
            "meprop-bench COMMAND --help says more about each; the suites also run under",
            "pytest: pytest suites --benchmark-only --benchmark-json out.json",
        ]
    )


def main(argv: Sequence[str] | None = None, *, default: str | None = None) -> int:
    """Dispatch ``argv`` (``sys.argv[1:]`` by default) to its command.

    ``default`` is the command run when ``argv`` names none (``python -m meprop_bench``
    runs the main job); without it, a missing command is a usage error.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    if args[:1] == ["--version"]:
        print(f"meprop-bench {__version__}")
        return 0
    if default is not None and (not args or args[0].startswith("-")):
        args.insert(0, default)
    if not args or args[0] not in COMMANDS:
        problem = "no command given" if not args else f"unknown command {args[0]!r}"
        print(f"{usage()}\n\nerror: {problem}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"meprop_bench.commands.{args[0]}")
    return run_main(module.main, args[1:])


def entry_point() -> None:
    """The ``meprop-bench`` console script."""
    raise SystemExit(main())
