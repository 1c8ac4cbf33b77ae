"""``pkpo demo/train/sweep``: clean errors, and ``pkpo demo --quick`` end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from pkpo._cli import Parser, plain_text
from pkpo.rl.cli import demo_main, sweep_main, train_main
from pkpo.rl.config import TrainConfig
from pkpo.rl.sweeps.grid import run_spec


@pytest.mark.parametrize(
    "main, argv, message",
    [
        (train_main, ["--k", "32", "--n", "16"], "k=32 > n=16"),
        (train_main, ["--task", "chess"], "unknown task"),
        (train_main, ["--steps", "-5"], "steps must be"),
        (train_main, ["--method", "ppo"], "unknown method"),
        (train_main, ["--config", "/nonexistent.toml"], "does not exist"),
        (train_main, ["--lr", "abc"], "invalid float value"),
        (sweep_main, ["--out", "X", "--runs", "k4,k99"], "k=99 > n=16"),
        (sweep_main, ["--out", "X", "--runs", "bogus"], "unknown run"),
        (
            sweep_main,
            ["--out", "X", "--jobs", "0"],
            "argument --jobs: expected an integer >= 1; got 0",
        ),
        (
            sweep_main,
            ["--out", "X", "--seeds", "0", "-1"],
            "argument --seeds: expected an integer >= 0; got -1",
        ),
        (demo_main, [], "required: --out"),
        (
            demo_main,
            ["--out", "X", "--seed", "-1"],
            "argument --seed: expected an integer >= 0; got -1",
        ),
        (train_main, ["--tensorboard", "nope"], "argument --tensorboard: expected true or false"),
        (train_main, ["--tensorboard", "flase"], "argument --tensorboard: expected true or false"),
        (train_main, ["--steps", "2.5"], "argument --steps: invalid int value: '2.5'"),
        (train_main, ["--eval-ks", "1", "4"], "unrecognized arguments: 4"),
        (train_main, ["--eval-ks", "1;4"], "expected positive integers separated by commas"),
        (train_main, ["--device", "cuda:99", "--out", "X"], "device 'cuda:99' is not available"),
        (
            train_main,
            ["--out", "/proc/nope/run"],
            "cannot create the --out folder '/proc/nope/run'",
        ),
        (
            sweep_main,
            ["--out", "/proc/nope/sweep", "--runs", "k1"],
            "cannot create the --out folder",
        ),
        (demo_main, ["--out", "/proc/nope/demo"], "cannot create the --out folder"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, main, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error:" in err and message in err
    assert not (tmp_path / "X").exists()


def test_flags_parse_strictly_and_have_one_spelling():
    from pkpo.rl.cli import _add_config_flags

    parser = Parser(prog="x")
    _add_config_flags(parser)
    args = parser.parse_args(["--eval-ks", "4,1,2,4", "--tensorboard", "OFF"])
    assert args.eval_ks == [1, 2, 4] and args.tensorboard is False
    assert parser.parse_args(["--tensorboard", "yes"]).tensorboard is True


def test_help_shows_one_out_flag(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = capsys.readouterr().out
    assert "--out DIR" in text and "--out-dir" not in text and "OUT_DIR" not in text
    assert "--eval-ks K1,K2,..." in text and "--tensorboard {true,false}" in text


def test_help_lists_every_config_field_with_its_help(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for f in dataclasses.fields(TrainConfig):
        if f.name != "out_dir":
            shown = "".join(
                plain_text(f.metadata["help"]).split()
            )  # help shows no reStructuredText markup
            assert "--" + f.name.replace("_", "-") in text and shown in text, f.name


def test_old_out_dir_spelling_still_works(tmp_path):
    from pkpo.rl.cli import _add_out_flag

    parser = Parser(prog="x")
    _add_out_flag(parser, "help")
    assert parser.parse_args(["--out-dir", "a"]).out == "a" == parser.parse_args(["--out", "a"]).out


def test_cli_error_via_the_pkpo_command_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "pkpo.cli", "train", "--k", "9", "--n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "k=9 > n=4" in proc.stderr


def test_run_spec():
    assert run_spec("k4", 200) == {"method": "pkpo", "k": "4"}
    assert run_spec("anneal", 200) == {"method": "pkpo", "k": "8->1@120"}
    assert run_spec("anneal4->2", 10) == {"method": "pkpo", "k": "4->2@6"}
    assert run_spec("tzsm", 5) == {"method": "tzsm", "k": "1"}


def _refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PKPO_CACHE", str(tmp_path / "cache")
    )  # the warm-start cache of every command
    out = tmp_path / "demo"
    assert demo_main(["--out", str(out), "--quick", "--jobs", "1", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    names = [r["name"] for r in summary["runs"]]
    assert names == ["warm_start", "k1", "grpo", "k8", "anneal"]  # a non-PKPO baseline beside k1
    assert (
        len({tuple(r) for r in summary["runs"]}) == 1
    )  # the warm start has the same keys as the runs
    schedules = [r["k_schedule"] for r in summary["runs"][1:]]
    assert schedules[:3] == ["k=1", "k=1", "k=8"] and schedules[3].startswith("k=8 until step")
    for run in summary["runs"]:
        for key in ("pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "greedy_pass@1", "entropy"):
            assert run[key] is not None, key
        assert 0 <= run["pass@1"] <= run["pass@4"] <= run["pass@16"] <= 1
    for run in summary["runs"][1:]:
        assert 0 <= run["hard_solve_rate"] <= 1 and 0 <= run["cumulative_solve_rate"] <= 1
    report = (out / "report.md").read_text()
    assert (
        "| warm_start | none" in report
        and "| k1 | k=1 | 1 |" in report
        and "pass_at_k_curves.png" in report
    )
    # a smoke test: every page says so, and no finding is written
    assert (
        summary["smoke_test"] is True
        and summary["findings"] == []
        and "SMOKE TEST" in summary["note"]
    )
    assert "smoke test, no findings" in report.splitlines()[0] and "SMOKE TEST" in report
    assert (
        "## What the numbers show" not in report and "SMOKE TEST" in (out / "table.md").read_text()
    )
    assert json.loads((out / "table.json").read_text())["smoke_test"] is True
    for name in ("table.json", "summary.json"):  # strict JSON (jq, JavaScript): NaN written as null
        text = (out / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=_refuse_constant)
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert rows[0]["reward_mean_se"] is None  # the SE over one seed: NaN, written as null
    assert list((tmp_path / "cache" / "warmstart").glob("*.pt")) and not (out / "cache").exists()
    for png in ("pass_at_k_curves.png", "solve_rate.png", "entropy.png", "final_pass_at_k.png"):
        assert (out / png).stat().st_size > 1000
    evals = [
        json.loads(line)
        for line in (out / "runs" / "k8" / "seed0" / "metrics.jsonl").read_text().splitlines()
    ]
    assert (
        len([r for r in evals if "eval/pass@1" in r]) >= 4
    )  # steps 0, 4, 8 and the final evaluation
    # a second call reuses the finished runs and the cached warm start, and keeps the wall time
    # measured first
    assert demo_main(["--out", str(out), "--quick", "--jobs", "1", "--no-progress"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["wall_s"] == summary["wall_s"] and again["runs"] == summary["runs"]
    assert "measured when the runs were trained" in (out / "report.md").read_text()
    # the sweep's report-only mode rebuilds the table from the finished runs
    (out / "table.md").unlink()
    assert sweep_main(["--out", str(out), "--report-only", "--no-progress"]) == 0
    assert "| grpo | k=1 | 1 |" in (out / "table.md").read_text()
    assert sweep_main(["--out", str(tmp_path / "empty"), "--report-only"]) == 2
