"""Run folders: nothing lost on a re-run, --resume needs a checkpoint, one process per folder,
Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.cli import sweep_main, train_main  # noqa: E402
from pkpo.rl.training import rundir  # noqa: E402
from pkpo.rl.training.checkpoint import load_checkpoint  # noqa: E402
from pkpo.rl.training.trainer import train  # noqa: E402

from test_trainer import DigitTask, tiny_config, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)

torch.set_num_threads(1)
SRC = str(Path(__file__).resolve().parents[3] / "src")
# the smallest pkpo train command line that runs end to end in a few seconds
TINY = [
    "--preset",
    "quick",
    "--steps",
    "2",
    "--warm-steps",
    "2",
    "--eval-problems",
    "2",
    "--no-progress",
]


def test_a_new_start_into_a_finished_run_is_refused_and_loses_nothing(tmp_path):
    cfg = tiny_config(tmp_path, steps=3, eval_problems=0)
    train(cfg, tiny_gpt(), DigitTask(), progress=False)
    folder = Path(cfg.out_dir)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(
        ValueError, match=r"already holds a run \(metrics.jsonl \(4 records\), checkpoint.pt"
    ):
        train(cfg.replace(steps=5), tiny_gpt(), DigitTask(), progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_overwrite_replaces_the_run_files_only(tmp_path):
    cfg = tiny_config(tmp_path, steps=3, eval_problems=0)
    train(cfg, tiny_gpt(), DigitTask(), progress=False)
    notes = Path(cfg.out_dir) / "notes.txt"
    notes.write_text("mine")
    final = train(cfg.replace(steps=2), tiny_gpt(), DigitTask(), overwrite=True, progress=False)
    records = (Path(cfg.out_dir) / "metrics.jsonl").read_text().splitlines()
    assert (
        final["steps"] == 2 and len(records) == 3
    )  # config + 2 steps: nothing left from the old run
    assert load_checkpoint(Path(cfg.out_dir) / "checkpoint.pt")["step"] == 2
    assert notes.read_text() == "mine"


def test_resume_without_a_checkpoint_says_so(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(
        ValueError, match="nothing to resume in .*no checkpoint.pt .*the folder does not exist"
    ):
        train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)
    assert not Path(cfg.out_dir).exists()
    with pytest.raises(ValueError, match="exclude each other"):
        train(cfg, tiny_gpt(), DigitTask(), resume=True, overwrite=True, progress=False)


def test_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    cfg = tiny_config(tmp_path, steps=1, eval_problems=0)
    code = (
        "from pkpo.rl.training.rundir import RunLock; import time; "
        f"lock = RunLock({cfg.out_dir!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=f"is in use by pid {holder.pid}"):
            train(cfg, tiny_gpt(), DigitTask(), progress=False)
        assert rundir.existing_run(cfg.out_dir) == []
    finally:
        holder.kill()
        holder.wait()
    # the system released the lock of the killed holder: no stale lock
    assert train(cfg, tiny_gpt(), DigitTask(), progress=False)["steps"] == 1


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    cfg = tiny_config(tmp_path, steps=2, eval_problems=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tiny_gpt(), DigitTask(fail_after=3), progress=False)
    with rundir.RunLock(cfg.out_dir):  # free again
        pass


def test_cli_refuses_a_rerun_and_resume_without_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert train_main(TINY + cache + ["--out", str(out)]) == 0
    capsys.readouterr()
    assert train_main(TINY + cache + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a run" in err and "--overwrite" in err
    assert train_main(TINY + cache + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    assert train_main(TINY + cache + ["--out", str(out), "--resume", "--steps", "3"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [
        r["step"] for r in records if "k" in r
    ]  # training-step records (not config or eval/ records)
    assert steps == [0, 1, 2]  # each step once: nothing lost or repeated
    assert train_main(TINY + cache + ["--out", str(out), "--overwrite"]) == 0


@pytest.mark.slow
def test_sweep_refuses_runs_made_with_other_settings(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    argv = [
        "--preset",
        "quick",
        "--steps",
        "2",
        "--warm-steps",
        "2",
        "--eval-problems",
        "2",
        "--out",
        out,
        "--runs",
        "k2",
        "--seeds",
        "0",
        "--no-progress",
    ]
    assert sweep_main(argv) == 0
    assert sweep_main(argv) == 0  # the same command reuses the finished run
    capsys.readouterr()
    assert sweep_main(argv + ["--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings (differs in ['lr'])" in err and err.count("\n") == 1
    assert sweep_main(argv + ["--lr", "1e-3", "--overwrite"]) == 0
    final = json.loads((tmp_path / "sweep" / "runs" / "k2" / "seed0" / "final.json").read_text())
    assert final["config"]["lr"] == 1e-3


@pytest.mark.slow
def test_ctrl_c_names_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    argv = [
        "--preset",
        "quick",
        "--steps",
        "100000",
        "--warm-steps",
        "2",
        "--eval-problems",
        "2",
        "--checkpoint-every",
        "2",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pkpo", "train", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert err.startswith(
        f"pkpo train: interrupted; the last checkpoint is '{out / 'checkpoint.pt'}'"
    )
    assert err.rstrip().endswith("--resume") and "Traceback" not in err
