"""``python -m meprop_bench.gate``: the same as ``meprop-bench gate`` (see
:mod:`meprop_bench.commands.gate`)."""

import sys

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(["gate", *sys.argv[1:]]))
