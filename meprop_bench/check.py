"""``python -m meprop_bench.check``: the same as ``meprop-bench check`` (see
:mod:`meprop_bench.commands.check`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["check", *sys.argv[1:]]))
