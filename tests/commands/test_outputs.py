"""Every command that writes a result file checks its path before any work: a directory,
a file that exists (without --force) or a parent that is a file is a one-line error and
exit 2, and nothing is left behind."""

from __future__ import annotations

import pytest

import meprop_bench.commands.check
import meprop_bench.commands.gate
import meprop_bench.commands.recover
import meprop_bench.commands.train
from meprop_bench.commands.common import run_main
from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import write_new_json


def _work_started(*args, **kwargs):
    raise AssertionError("the work started before the output path was checked")


# command, its argv before the output option, the option, the function doing the work
COMMANDS = {
    "train": (meprop_bench.commands.train, ["--epochs", "1"], "--out", "run_set"),
    "check": (meprop_bench.commands.check, ["-B", "4", "--n", "8", "--d-in", "8", "--k", "2"],
              "--json", "run_check"),
    "gate": (meprop_bench.commands.gate, ["base.json", "head.json"], "--json", "load_side"),
    "recover": (meprop_bench.commands.recover, ["sweep.partial.jsonl"], "-o", "read_partial"),
}  # fmt: skip


@pytest.fixture(params=list(COMMANDS))
def command(request, monkeypatch, tmp_path):
    """(main, argv without the output path) of each command, its work replaced."""
    module, argv, option, work = COMMANDS[request.param]
    monkeypatch.setattr(module, work, _work_started)
    monkeypatch.chdir(tmp_path)
    return module.main, [*argv, option]


def _fails_at_once(main, argv, capsys, message: str) -> None:
    assert run_main(main, argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err


def test_a_directory_is_refused_before_the_work_even_with_force(command, tmp_path, capsys):
    main, argv = command
    (tmp_path / "out").mkdir()
    _fails_at_once(main, [*argv, "out", "--force"], capsys, "out is a directory")
    assert list((tmp_path / "out").iterdir()) == []


def test_an_existing_file_is_refused_before_the_work(command, tmp_path, capsys, monkeypatch):
    main, argv = command
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_path / "out.json").write_text("earlier")
    _fails_at_once(main, [*argv, "out.json"], capsys, "out.json already exists")
    assert (tmp_path / "out.json").read_text() == "earlier" and not summary.exists()


def test_a_parent_that_is_a_file_is_refused_before_the_work(command, tmp_path, capsys):
    main, argv = command
    (tmp_path / "file").write_text("")
    _fails_at_once(main, [*argv, "file/out.json"], capsys, "file is not a directory")


def test_write_new_json_leaves_nothing_behind_when_it_cannot_write(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(MePropInputError, match="is a directory"):
        write_new_json(tmp_path / "out", {"a": 1}, force=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]
