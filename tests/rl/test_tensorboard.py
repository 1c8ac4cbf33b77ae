"""TensorBoard is on by default and installed with the rl extra: a tiny `pkpo train` writes events
to OUT/tb that TensorBoard's own reader reads back, with the same numbers as metrics.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the rl extra: make test installs it")
pytest.importorskip(
    "tensorboard", reason="the rl extra installs tensorboard: make test installs it"
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = [
    "--steps",
    "3",
    "--warm-steps",
    "0",
    "--prompts-per-step",
    "2",
    "--n",
    "4",
    "--k",
    "2",
    "--d-model",
    "16",
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--eval-every",
    "0",
    "--eval-problems",
    "4",
    "--final-eval-problems",
    "4",
    "--eval-samples",
    "4",
    "--eval-ks",
    "1,2",
    "--n-train",
    "8",
    "--n-heldout",
    "4",
    "--n-validation",
    "4",
    "--threads",
    "1",
    "--checkpoint-every",
    "0",
    "--no-progress",
]


@pytest.mark.slow
def test_train_writes_tensorboard_events_by_default_that_read_back(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pkpo",
            "train",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            *TINY,
        ],  # no --tensorboard: the default
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "tb").is_dir(), "the default run wrote no tb/ folder"

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()[1:]]
    steps = [record for record in records if "reward/mean" in record]
    assert [record["step"] for record in steps] == [0, 1, 2]
    for key in ("reward/mean", "policy/entropy", "k"):
        scalars = events.Scalars(key)
        assert [event.step for event in scalars] == [0, 1, 2], key
        assert [event.value for event in scalars] == pytest.approx(
            [r[key] for r in steps], rel=1e-6
        )
    final_eval = [record for record in records if "eval/pass@2" in record][-1]
    assert events.Scalars("eval/pass@2")[-1].value == pytest.approx(final_eval["eval/pass@2"])
