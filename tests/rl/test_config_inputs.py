"""TrainConfig from TOML: values of the wrong type and sizes no machine could run: one line each."""

from __future__ import annotations

import pytest

from pkpo.rl.cli import train_main
from pkpo.rl.config import SIZE_LIMITS, TrainConfig


@pytest.mark.parametrize(
    "toml, message",
    [
        ("steps = true", "config key 'steps' must be an integer; got true"),
        ('tensorboard = "false"', "config key 'tensorboard' must be true or false; got \"false\""),
        ("eval_ks = [1.5, 2]", "config key 'eval_ks' must be a list of integers; got [1.5, 2]"),
        ("device = 0", "config key 'device' must be a string; got 0"),
        ("lr = true", "config key 'lr' must be a number; got true"),
        ("[rl]\nn = 100000\nprompts_per_step = 100000", "n must be at most 65,536, got 100,000"),
        (
            "n = 1024\nprompts_per_step = 2048",
            "prompts_per_step x n = 2,097,152 completions per step",
        ),
        ("d_model = 1000000", "d_model must be at most 65,536, got 1,000,000"),
    ],
)
def test_bad_toml_values_are_one_line_errors(tmp_path, capsys, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_toml(path)
    assert train_main(["--config", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo train: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_good_toml_values_keep_their_types(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(
        'k = 4\nlr = 1\neval_ks = [1, 2]\ntensorboard = false\ndevice = "cpu"\n'
        "eval_samples = 4\nn = 8\n"
    )
    cfg = TrainConfig.from_toml(path)
    assert (cfg.k, cfg.lr, cfg.eval_ks, cfg.tensorboard) == ("4", 1.0, (1, 2), False)
    assert isinstance(cfg.lr, float)


def test_the_flags_are_bounded_too(capsys, tmp_path):
    argv = ["--n", "100000", "--prompts-per-step", "100000", "--out", str(tmp_path / "r")]
    assert train_main(argv) == 2
    assert "n must be at most 65,536" in capsys.readouterr().err
    assert set(SIZE_LIMITS) <= set(TrainConfig.__dataclass_fields__)


def test_a_recorded_config_without_a_neutral_later_field_is_the_same_run():
    from pkpo.rl.config import changed_fields, same_config

    current = TrainConfig().to_dict()
    recorded = {k: v for k, v in current.items() if k != "maze_size"}  # written before maze_size
    assert same_config(recorded, current)
    assert changed_fields(recorded, current) == []
    # but a recorded value that differs from the default is a different run
    assert not same_config({**recorded, "lr": current["lr"] * 2}, current)
    assert changed_fields({**recorded, "lr": 1.0}, current) == ["lr"]
    assert not same_config(None, current)
    # a run reached by another path (a moved folder, a link) is the same run
    assert same_config({**recorded, "out_dir": "/elsewhere/run"}, current)
    # a field missing from the record while the current config sets it away from its default
    assert not same_config(recorded, {**current, "maze_size": 11})
    # a later field that changes what a run records (the near-greedy evaluation) is not neutral
    older = {k: v for k, v in current.items() if k != "greedy_samples"}
    assert not same_config(older, current)
    assert changed_fields(older, current) == ["greedy_samples"]
