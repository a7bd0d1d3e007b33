"""``python -m meprop_bench.profile``: the same as ``meprop-bench profile`` (see
:mod:`meprop_bench.commands.profile`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["profile", *sys.argv[1:]]))
