"""The maze benchmark driver: method specs, tuning grid and criterion, and a tiny end-to-end run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from pkpo.rl.config import TrainConfig
from pkpo.rl.sweeps import maze as mb


def test_method_overrides_anneal_step_and_unknown_name():
    assert mb.method_overrides("pkpo_anneal", 150)["k"] == "16->1@90"
    assert mb.method_overrides("pkpo_k4", 150) == {"method": "pkpo", "k": "4"}
    with pytest.raises(ValueError, match="unknown maze method"):
        mb.method_overrides("ppo", 10)


def test_grid_points_cross_learning_rates_with_the_methods_own_parameter():
    assert mb.grid_points("grpo", (1e-4, 1e-3)) == [{"lr": 1e-4}, {"lr": 1e-3}]
    points = mb.grid_points("grpo_entropy", (1e-3,))
    assert points == [
        {"lr": 1e-3, "entropy_coef": c} for c in mb.PARAM_GRID["grpo_entropy"]["entropy_coef"]
    ]
    assert mb.point_label({"lr": 1e-3, "entropy_coef": 0.05}) == "entropy_coef0.05_lr0.001"
    assert mb.point_label({"lr": 1e-4, "method_params": "beta=4"}) == "lr0.0001_beta4"


def test_each_method_is_tuned_by_its_own_target():
    final = {"pass@1": 0.2, "pass@4": 0.5, "pass@16": 0.6}
    assert mb.tuning_score(final, "grpo") == pytest.approx(0.2)
    assert mb.tuning_score(final, "pkpo_k4") == pytest.approx(0.5)
    assert mb.tuning_score(final, "pkpo_k16") == pytest.approx(0.6)
    assert mb.tuning_score(final, "maxrl") == pytest.approx(0.4)  # no single pass@k: both ends
    assert set(mb.TARGETS) <= set(mb.METHOD_RUNS)


def test_preset_is_a_valid_config_and_every_method_spec_names_a_field():
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), **mb.MAZE_PRESET})
    assert cfg.task == "maze" and cfg.n >= 16
    fields = set(TrainConfig().to_dict())
    for name in mb.METHOD_RUNS:
        assert set(mb.method_overrides(name, cfg.steps)) <= fields


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path, capsys):
    tiny = {
        "maze_size": 7,
        "d_model": 16,
        "n_layer": 1,
        "n_head": 2,
        "warm_steps": 2,
        "steps": 2,
        "prompts_per_step": 2,
        "n": 16,
        "eval_every": 0,
        "eval_problems": 3,
        "final_eval_problems": 3,
        "eval_samples": 16,
        "eval_ks": (1, 16),
        "checkpoint_every": 0,
        "n_validation": 4,
        "n_heldout": 4,
        "max_new_tokens": 8,
    }
    best = mb.run_benchmark(
        tmp_path, ["grpo", "pkpo_k16"], lrs=(1e-3, 3e-3), seeds=(0,), overrides=tiny, progress=False
    )
    assert set(best) == {"grpo", "pkpo_k16"} and best["grpo"]["point"]["lr"] in (1e-3, 3e-3)
    for run in ("warm_start", "grpo", "pkpo_k16"):
        final = json.loads((tmp_path / "runs" / run / "seed0" / "final.json").read_text())
        assert 0 <= final["pass@1"] <= final["pass@16"] <= 1 and 0 <= final["greedy_pass@1"] <= 1
    tuned = json.loads(
        (tmp_path / "tune" / "grpo" / "lr0.001" / "seed100" / "final.json").read_text()
    )
    assert tuned["config"]["eval_split"] == "validation" and tuned["config"]["seed"] == mb.TUNE_SEED
    # the report tool reads the folders: every block, the published rows, the reduced-run note
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
    from maze_results import MAZE_BLOCKS, maze_blocks

    from pkpo._output import replace_blocks

    blocks = maze_blocks(tmp_path, tmp_path / "figures")
    assert "A reduced run" in blocks["maze-setting"] and "`grpo`" in blocks["maze-table"]
    assert "39.6" in blocks["maze-published"] and "not run" in blocks["maze-bias"]
    # the commands are shown, never run by the docs test
    assert "<!-- docs-test: parse-only" in blocks["maze-setting"].split("```bash")[0]
    assert (tmp_path / "figures" / "maze_curves.png").exists() or "No training curves" in blocks[
        "maze-curves"
    ]
    doc = "".join(f"<!-- generated:{n} -->\nold\n<!-- /generated:{n} -->\n" for n in blocks)
    other = "<!-- generated:demo-table -->\nkept\n<!-- /generated:demo-table -->\n"
    out = replace_blocks(other + doc, blocks, "doc", MAZE_BLOCKS)
    assert "old" not in out and "kept" in out  # the other blocks are left as they are
    with pytest.raises(ValueError, match="no marker"):
        replace_blocks("", blocks, "doc", MAZE_BLOCKS)
    # a second call reuses every finished run
    again = mb.run_benchmark(
        tmp_path, ["grpo", "pkpo_k16"], lrs=(1e-3, 3e-3), seeds=(0,), overrides=tiny, progress=False
    )
    assert again == best


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--methods", "grpo,ppo"], "unknown methods ['ppo']"),
        (["--jobs", "0"], "--jobs and --steps must be >= 1"),
        (["--set", '{"lr": -1}'], "bad --set: lr must be > 0"),
        (["--set", '{"no_such_field": 1}'], "bad --set: unknown config keys"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert mb.main(["--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_pkpo_train_preset_maze_runs(tmp_path, capsys):
    from pkpo.rl.cli import train_main

    argv = [
        "--preset",
        "maze",
        "--warm-steps",
        "2",
        "--steps",
        "2",
        "--eval-problems",
        "2",
        "--final-eval-problems",
        "2",
        "--n-validation",
        "4",
        "--n-heldout",
        "4",
        "--eval-every",
        "0",
        "--d-model",
        "16",
        "--n-layer",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--no-progress",
    ]
    assert train_main(argv) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["name"].startswith("maze9__") and final["config"]["task"] == "maze"
    assert final["problems_seen"] == 2 * final["config"]["prompts_per_step"]
