"""``python -m meprop_bench``: the console script ``meprop-bench``; with no command, the
main job (``meprop-bench run``), as before the script existed."""

from meprop_bench.commands import main

if __name__ == "__main__":
    raise SystemExit(main(default="run"))
