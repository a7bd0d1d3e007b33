"""``python -m meprop_bench.train``: the same as ``meprop-bench train`` (see
:mod:`meprop_bench.commands.train`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
