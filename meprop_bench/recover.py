"""``python -m meprop_bench.recover``: the same as ``meprop-bench recover`` (see
:mod:`meprop_bench.commands.recover`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["recover", *sys.argv[1:]]))
