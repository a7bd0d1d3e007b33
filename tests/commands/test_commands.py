"""What every command line shares: no abbreviated options (argparse would take --out for
--out-root), and one spelling for one meaning (--out: the exact output path; --out-root:
the folder that holds reports/<name>/)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from documents import bench_doc, full_sweep, training_doc

from meprop_bench.commands.common import run_main
from meprop_bench.errors import MePropInputError

COMMANDS = [f"meprop_bench.commands.{name}" for name in
            ("run", "ab", "check", "gate", "profile", "recover", "train", "report",
             "model")]  # fmt: skip


@pytest.mark.parametrize("name", COMMANDS)
def test_no_command_takes_an_abbreviated_option(name):
    parser = importlib.import_module(name).build_parser()
    assert parser.allow_abbrev is False
    assert "--output" not in parser._option_string_actions  # an exact path is --out


@pytest.mark.parametrize(
    "command,argv",
    [("run", []), ("check", []), ("train", []), ("report", []), ("profile", []),
     ("gate", ["a.json", "b.json"]), ("recover", ["p.jsonl", "-o", "o.json"]),
     ("model", ["--preset", "mlp"])],
)  # fmt: skip
def test_an_unknown_option_gets_the_usage_line_and_one_error(command, argv, capsys):
    # ab passes what it does not know to pytest (its --help says so).
    main = importlib.import_module(f"meprop_bench.commands.{command}").main
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--bogus"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"usage: meprop-bench {command} ")
    assert err[-1] == f"meprop-bench {command}: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_renders_every_option(name):
    # argparse %-formats each help string: a bare "5% slower" printed the action's dict.
    text = importlib.import_module(name).build_parser().format_help()
    assert "option_strings" not in text


@pytest.mark.parametrize(
    "name,argv",
    [
        ("meprop_bench.commands.run", ["--skip-bench", "--skip-train"]),
        ("meprop_bench.commands.profile",
         ["--width", "16", "--batch", "2", "--k", "2", "--no-py-spy", "--duration", "0.05"]),
        ("meprop_bench.commands.report", []),
    ],
)  # fmt: skip
def test_out_is_not_taken_for_out_root(name, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(name).main
    try:
        code = run_main(main, [*argv, "--out", "x"])
    except SystemExit as exit:  # argparse's usage error
        code = exit.code
    assert code == 2
    assert re.search(r"unrecogni[sz]ed arguments?:? '?--out\b(?!-)", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "profile", "report"])
@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".", ""])
def test_a_name_is_one_folder_under_out_root(command, name, tmp_path, capsys):
    main = importlib.import_module(f"meprop_bench.commands.{command}").main
    root = tmp_path / "root"
    with pytest.raises(SystemExit) as exit:  # argparse's usage error, before any work
        main(["--out-root", str(root), "--name", name])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"--name: {name!r} is not a folder name" in err and err.count("error:") == 1
    assert list(tmp_path.iterdir()) == []


def test_recover_writes_to_out(tmp_path):
    from meprop_bench.commands.recover import main

    partial = tmp_path / "p.jsonl"
    partial.write_text('{"kind": "header", "machine_info": {}, "commit_info": {}, '
                       '"datetime": "2026-01-01"}\n')  # fmt: skip
    assert run_main(main, [str(partial), "--out", str(tmp_path / "o.json")]) == 0
    assert (tmp_path / "o.json").exists()


def test_recover_names_a_directory_and_never_overwrites_its_input(tmp_path, capsys):
    from meprop_bench.commands.recover import main

    partial = tmp_path / "p.jsonl"
    header = '{"kind": "header", "machine_info": {}, "commit_info": {}, "datetime": "x"}\n'
    partial.write_text(header)
    assert run_main(main, [str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    assert f"error: {tmp_path} is a directory; give the .partial.jsonl file" in (
        capsys.readouterr().err
    )
    assert run_main(main, [str(partial), "--out", str(partial), "--force"]) == 2
    assert "--out is the partial file itself" in capsys.readouterr().err
    assert partial.read_text() == header


def test_recover_skips_lines_that_are_no_benchmark_record(tmp_path, capsys):
    from meprop_bench.commands.recover import main

    partial = tmp_path / "p.jsonl"
    records = [{"kind": "header", "machine_info": {}, "commit_info": {}, "datetime": "x"},
               "a string", [1], {"kind": "benchmark", "benchmark": "no dict"},
               {"kind": "benchmark", "benchmark": {"fullname": "a"}}]  # fmt: skip
    partial.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run_main(main, [str(partial), "--out", str(tmp_path / "o.json")]) == 0
    assert "skipped 3 unreadable line(s)" in capsys.readouterr().err
    assert json.loads((tmp_path / "o.json").read_text())["benchmarks"] == [{"fullname": "a"}]


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(bench_doc(full_sweep()[:2]), indent=2),  # as the suites write it
        json.dumps(bench_doc(full_sweep()[:2])),  # on one line
        json.dumps(training_doc(epochs=1, seeds=(0,)), indent=2),
        b"\x89PNG\r\n\x1a\n\xff\xfe\x00",  # binary
        '"header"\n{"kind": "benchmark", "benchmark": {}}\n',
        '{"kind": "header"}\n',  # no machine_info
    ],
    ids=["benchmark-json", "benchmark-json-one-line", "training", "binary", "string", "bare"],
)
def test_recover_refuses_what_is_not_partial_results_in_one_line(content, tmp_path, capsys):
    from meprop_bench.commands.recover import main

    given = tmp_path / "given.json"
    (given.write_bytes if isinstance(content, bytes) else given.write_text)(content)
    assert run_main(main, [str(given), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {given}: not a meprop-bench partial results file")
    assert err.count("\n") == 1 and not (tmp_path / "o.json").exists()


REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.mark.parametrize(
    "name",
    ["meprop_bench.commands.run", "meprop_bench.commands.profile", "meprop_bench.commands.report"],
)
def test_default_out_root_is_the_checkouts_reports_whatever_the_directory(
    name, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args, _ = importlib.import_module(name).build_parser().parse_known_args([])
    assert Path(args.out_root) == REPORTS


def test_train_writes_under_the_checkouts_reports_by_default(tmp_path, monkeypatch, capsys):
    import meprop_bench.commands.train as train

    def stop(path, force):
        raise MePropInputError(f"would write {path}")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "check_new_path", stop)
    assert run_main(train.main, ["--epochs", "1"]) == 2
    written = Path(capsys.readouterr().err.split("would write ")[1].strip())
    assert written.parent == REPORTS / "runs" and written.name.startswith("train-topk-")
