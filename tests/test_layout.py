"""The package's layout keeps its promises: library code never imports a command, the
public API imports from the top, and every old ``python -m meprop_bench.X`` still runs
the command of that name."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import meprop_bench
from meprop_bench.commands import COMMANDS, main, usage

PACKAGE = Path(meprop_bench.__file__).resolve().parent
SHIMS = {"check", "train", "profile", "recover", "ab"}  # meprop_bench/X.py
PACKAGE_SHIMS = {"gate", "report"}  # meprop_bench/X/__main__.py


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_library_code_never_imports_a_command():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or path.name == "__main__.py" or rel.stem in SHIMS:
            continue  # the commands themselves and the entry-point shims
        if any(m == "meprop_bench.commands" or m.startswith("meprop_bench.commands.")
               for m in _imports(path)):  # fmt: skip
            offenders.append(str(rel))
    assert offenders == []


def test_the_public_api_imports_from_the_top():
    from meprop_bench import KERNELS, Gradients, MePropLinear, RowGrad, backward, swap_linear

    assert callable(backward) and callable(swap_linear) and KERNELS
    assert {MePropLinear.__name__, Gradients.__name__, RowGrad.__name__}


def test_every_command_has_a_module_with_a_main_and_one_line_of_help():
    lines = usage().splitlines()
    for name, line in COMMANDS.items():
        module = __import__(f"meprop_bench.commands.{name}", fromlist=["main"])
        assert callable(module.main) and callable(module.build_parser)
        assert any(row.split()[:1] == [name] and line in row for row in lines)


def test_a_missing_or_unknown_command_is_a_usage_error(capsys):
    assert main([]) == 2 and "error: no command given" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "commands:" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(SHIMS | PACKAGE_SHIMS))
def test_the_old_module_names_run_their_command(name, monkeypatch, capsys):
    """The file ``python -m meprop_bench.NAME`` runs, run as __main__ in this process
    (runpy; by path: pytest's import hook rewrites the plugin package's modules); the
    test below starts one for real, and the console script."""
    path = PACKAGE / (f"{name}.py" if name in SHIMS else f"{name}/__main__.py")
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(path), run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: meprop-bench {name}")


def test_an_old_module_name_and_the_console_script_run_as_programs():
    script = Path(sys.executable).with_name("meprop-bench")
    for argv in ([sys.executable, "-m", "meprop_bench.check", "--help"],
                 [str(script), "check", "--help"]):  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stdout.startswith("usage: meprop-bench check"), argv


def test_python_dash_m_meprop_bench_without_a_command_is_the_main_job():
    done = subprocess.run([sys.executable, "-m", "meprop_bench", "--bogus"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr
    assert done.stderr.startswith("usage: meprop-bench run ")
