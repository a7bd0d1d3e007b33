"""``python -m meprop_bench.ab``: the same as ``meprop-bench ab`` (see
:mod:`meprop_bench.commands.ab`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["ab", *sys.argv[1:]]))
