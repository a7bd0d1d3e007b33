"""The same-runner A/B command, end to end on a tiny git repository with a fake suite:
each side imports its own package, runs interleave, the working tree is left as it
was, temporary trees are removed, and the gate's verdict is the exit status."""

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from meprop_bench.commands import ab
from meprop_bench.commands.ab import main, parse_args
from meprop_bench.commands.common import run_main
from meprop_bench.errors import MePropInputError
from meprop_bench.gate.ab import round_order

REPO_ROOT = Path(__file__).resolve().parents[2]

# A suite timed on a fake clock, so the samples are exact: the package's DELAY per call,
# with a little deterministic jitter. The dense benchmark takes 4x as long.
SUITE = """
import os
from meprop_bench import DELAY, VERSION


def run(benchmark, method, delay):
    now = [0.0]
    benchmark._timer = lambda: now[0]
    benchmark.group = "backward P"
    benchmark.extra_info.update(method=method, pair_key="P", threads=1, version=VERSION,
                                env=os.environ.get("AB_TEST_ENV", ""))

    def call():
        now[0] += delay * (1 + 0.01 * (len(str(now[0])) % 5))

    benchmark.pedantic(call, rounds=6, warmup_rounds=0)


def test_dense(benchmark):
    run(benchmark, "dense", 4e-3)


def test_sparse(benchmark):
    run(benchmark, "unified", DELAY)
"""


def package(version, delay):
    return f"VERSION = {version!r}\nDELAY = {delay!r}\n"


def git(repo, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def fingerprint(root):
    """Every file under ``root`` (.git included) with a hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "suites").mkdir(parents=True)
    (root / "meprop_bench").mkdir()
    (root / "suites" / "test_fake.py").write_text(SUITE)
    (root / "meprop_bench" / "__init__.py").write_text(package("base", 1e-3))
    (root / ".gitignore").write_text("ignored/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    (root / "ignored").mkdir()
    (root / "ignored" / "junk.txt").write_text("not copied")
    return root


@pytest.fixture
def isolated(tmp_path, monkeypatch, repo):
    """Run from the repo, temp files in a known place, the real package on PYTHONPATH
    (each side must still import its own)."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def results(out, side):
    runs = sorted((out / side).glob("run-*.json"))
    return [json.loads(p.read_text())["benchmarks"] for p in runs]


def test_rounds_flip_every_other_pair():
    assert [(side, i) for i in (1, 2, 3) for side in round_order(i)] == [
        ("base", 1), ("head", 1), ("head", 2), ("base", 2), ("base", 3), ("head", 3)
    ]  # fmt: skip


def test_unknown_arguments_and_those_after_dashes_go_to_pytest():
    args, rest = parse_args(["main", "--rounds", "2", "--meprop-widths", "1024", "--", "-k", "x"])
    assert (args.base_rev, args.rounds) == ("main", 2)
    assert rest == ["--meprop-widths", "1024", "-k", "x"]


def test_a_slower_working_tree_fails_and_nothing_is_left_behind(repo, isolated, tmp_path, capsys):
    (repo / "meprop_bench" / "__init__.py").write_text(package("head", 1.5e-3))
    (repo / "untracked.txt").write_text("copied to the head tree")
    before = fingerprint(repo)
    out = tmp_path / "out"

    argv = ["HEAD", "--rounds", "2", "--out", str(out), "--candidate-env", "AB_TEST_ENV=on"]
    code = run_main(main, argv)

    assert code == 1
    assert fingerprint(repo) == before
    assert list(isolated.iterdir()) == []
    for side, env in (("base", ""), ("head", "on")):
        runs = results(out, side)
        assert len(runs) == 2
        assert {b["extra_info"]["version"] for run in runs for b in run} == {side}
        assert {b["extra_info"]["env"] for run in runs for b in run} == {env}
    verdict = json.loads((out / "gate.json").read_text())
    assert verdict["verdict"] == "regression"
    failed = {(r["kind"], r["name"]) for r in verdict["rows"] if r["status"] == "regression"}
    assert failed == {("time", "test_sparse"), ("speedup", "test_sparse")}
    assert {r["status"] for r in verdict["rows"] if r["name"] == "test_dense"} == {"ok"}
    assert {r["n_base"] for r in verdict["rows"]} == {12}
    assert "Benchmark gate: REGRESSION" in (out / "gate.md").read_text()
    assert "Benchmark gate: REGRESSION" in capsys.readouterr().out


def test_an_unknown_revision_is_exit_2(repo, isolated, tmp_path, capsys):
    assert run_main(main, ["no-such-rev", "--out", str(tmp_path / "out")]) == 2
    assert "'no-such-rev' is not a commit" in capsys.readouterr().err


def test_a_non_empty_out_directory_is_refused(repo, isolated, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert run_main(main, ["HEAD", "--out", str(tmp_path / "out")]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused_as_one(repo, isolated, tmp_path, capsys):
    (tmp_path / "out").write_text("mine")
    assert run_main(main, ["HEAD", "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'out'} is a file; --out names a new directory" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "mine"


def test_missing_suites_leave_no_folder_behind(repo, isolated, tmp_path, capsys):
    assert run_main(main, ["HEAD", "--out", str(tmp_path / "out"), "--suites", "nope"]) == 2
    assert "the base tree has no nope" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_default_out_is_under_the_repositorys_reports(repo, isolated, monkeypatch, capsys):
    (repo / "docs").mkdir()
    monkeypatch.chdir(repo / "docs")
    started = []

    def first_run(tree, json_path, *args):
        started.append(json_path)
        raise MePropInputError("stop after choosing the folder")

    monkeypatch.setattr(ab, "run_suite", first_run)
    assert run_main(main, ["HEAD"]) == 2
    out = started[0].parent.parent
    assert out.parent == (repo / "reports").resolve() and out.name.startswith("ab-")
    assert not (repo / "docs" / "reports").exists()


@pytest.mark.parametrize(
    ("pytest_args", "message"),
    [(["-k", "no_such_case"], "matches no benchmark case"),
     (["--no-such-option"], "pytest refused the suite arguments")],
)  # fmt: skip
def test_a_selection_that_matches_nothing_is_exit_2_before_any_run(
    repo, isolated, tmp_path, capsys, pytest_args, message
):
    out = tmp_path / "out"
    assert run_main(main, ["HEAD", "--rounds", "auto", "--out", str(out), *pytest_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_cancelled_ab_removes_its_temporary_trees(repo, tmp_path):
    """SIGTERM (a CI cancel) while a side's run is under way: exit 143, as a SIGTERM'd
    process, and no meprop-ab-* tree left behind, as after Ctrl-C."""
    import os
    import signal
    import sys
    import time

    (repo / "suites" / "test_wait.py").write_text("import time\n\ndef test_wait():\n"
                                                   "    time.sleep(120)\n")  # fmt: skip
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(temp)}
    # -P: the real meprop_bench, not the fake one in the repository's working directory
    argv = [sys.executable, "-P", "-m", "meprop_bench", "ab", "HEAD", "--rounds", "1",
            "--out", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "base").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the A/B never started its runs"
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]
    assert list(temp.glob("meprop-ab-*")), "the temporary trees should exist while it runs"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert "terminated" in out
    assert not list(temp.glob("meprop-ab-*"))
