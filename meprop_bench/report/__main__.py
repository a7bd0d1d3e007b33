"""``python -m meprop_bench.report``: the same as ``meprop-bench report`` (see
:mod:`meprop_bench.commands.report`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["report", *sys.argv[1:]]))
