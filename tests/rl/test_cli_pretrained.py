"""`pkpo train --model PATH --task nl:...`: a local Hugging Face checkpoint through the RL
trainer."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pkpo.cli import main  # noqa: E402
from pkpo.rl.tasks.nl_tasks import nl_task_from_name  # noqa: E402

from test_pretrained import checkpoint_dir  # noqa: E402, F401 (a fixture: a tiny local Llama checkpoint)


@pytest.fixture
def checkpoint(checkpoint_dir):  # noqa: F811
    return checkpoint_dir


def test_train_with_a_local_checkpoint_runs_and_writes_results(checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(checkpoint),
            "--lora-r",
            "0",
            "--task",
            "nl:arithmetic-d1",
            "--steps",
            "2",
            "--prompts-per-step",
            "2",
            "--n",
            "4",
            "--k",
            "2",
            "--max-new-tokens",
            "4",
            "--eval-every",
            "0",
            "--eval-problems",
            "4",
            "--eval-samples",
            "4",
            "--eval-ks",
            "1,2",
            "--checkpoint-every",
            "0",
            "--tensorboard",
            "false",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    final = json.loads((out / "final.json").read_text())
    assert final["num_problems"] == 4 and final["samples"] == 4
    assert 0.0 <= final["pass@1"] <= final["pass@2"] <= 1.0
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss/policy" in record for record in steps) == 2


def test_nl_task_without_a_model_is_a_clean_error(tmp_path, capsys):
    code = main(
        ["train", "--task", "nl:arithmetic-d1", "--steps", "1", "--out", str(tmp_path / "x")]
    )
    assert code == 2
    assert "needs a pretrained policy" in capsys.readouterr().err


def test_model_with_a_synthetic_task_is_a_clean_error(checkpoint, tmp_path, capsys):
    code = main(["train", "--model", str(checkpoint), "--steps", "1", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "natural-language tasks" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, family, level",
    [("nl:arithmetic-d2", "arithmetic-d2", None), ("nl:sort-5", "sort-5", None)],
)
def test_nl_task_names_round_trip(name, family, level):
    task = nl_task_from_name(name, n_train=8, n_heldout=4)
    assert task.name == family
    assert len(task.problems("train")) == 8


@pytest.mark.parametrize("bad", ["nl:arithmetic", "nl:arithmetic-d9", "nl:sort-x", "nl:poetry-1"])
def test_bad_nl_task_names_raise(bad):
    with pytest.raises(ValueError):
        nl_task_from_name(bad, n_train=8, n_heldout=4)
