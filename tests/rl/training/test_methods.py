"""Every estimator of pkpo.advantages as the trainer's ``method``: config, parameters, k, scale,
entropy."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pkpo  # noqa: E402
from pkpo import advantages  # noqa: E402
from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.sweeps.grid import run_spec  # noqa: E402
from pkpo.rl.training.trainer import reward_advantages, train  # noqa: E402

from test_trainer import DigitTask, tiny_config, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)

torch.set_num_threads(1)


def _k_for(name: str) -> str:
    return "2" if advantages.spec(name).takes_k else "1"


@pytest.mark.parametrize("name", advantages.names())
def test_every_estimator_trains_and_logs_its_k(tmp_path, name):
    cfg = tiny_config(
        tmp_path, method=name, k=_k_for(name), steps=2, eval_problems=0, checkpoint_every=0
    )
    final = train(cfg, tiny_gpt(), DigitTask(), progress=False)
    assert final["method"] == name
    steps = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1:]
    ]
    expected_k = {"tzsm": cfg.n}.get(name, 2 if advantages.spec(name).takes_k else 1)
    assert [r["k"] for r in steps] == [expected_k, expected_k]


@pytest.mark.parametrize("name", advantages.names())
def test_trainer_advantages_are_the_family_values_with_scale(name):
    rng = np.random.default_rng(1)
    g = torch.as_tensor(rng.integers(0, 2, (6, 5)), dtype=torch.float32)
    cfg = TrainConfig(method=name, k=_k_for(name), n=5)
    params = {"k": 2} if advantages.spec(name).takes_k else {}
    params.update({"baseline": "loo_minus_one"} if name == "pkpo" else {})
    expected = advantages.compute(name, g, **params)
    torch.testing.assert_close(reward_advantages(g, cfg, 2), expected)
    scaled = reward_advantages(g, cfg, 2, "mean_abs")
    if expected.abs().mean() > 0:
        torch.testing.assert_close(scaled, expected / expected.abs().mean())


def test_method_params_reach_the_estimator():
    g = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    out = reward_advantages(g, TrainConfig(method="w_reinforce", method_params="lam=0.25"), 1)
    torch.testing.assert_close(out, torch.tensor([[0.25, -1.0, -1.0, 0.25]]))
    beta4 = reward_advantages(g, TrainConfig(method="rs_grpo", method_params=" beta = 4 "), 1)
    torch.testing.assert_close(beta4, advantages.rs_grpo(g, beta=4.0))
    assert not torch.allclose(beta4, advantages.rs_grpo(g))
    assert TrainConfig(method="pkpo", baseline="centered").method_kwargs() == {
        "baseline": "centered"
    }


def test_pkpo_at_k1_is_the_first_trainers_loo():
    g = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    loo = (g - (g.sum(-1, keepdim=True) - g) / 4) / 5  # (g_i - mean_{j!=i} g_j) / n, paper eq. 26
    torch.testing.assert_close(reward_advantages(g, TrainConfig(), 1), loo)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"method": "loo"}, 'use method "pkpo" with k "1"'),
        ({"method": "entropy"}, "entropy_coef 0.05"),
        ({"method": "maxrl2"}, "unknown method 'maxrl2'; expected one of pkpo, grpo"),
        ({"method": "grpo", "k": "4"}, "takes no k schedule"),
        ({"method": "maxrl", "scale": "n_over_k"}, '"n_over_k" multiplies by n/k'),
        (
            {"method": "grpo", "method_params": "beta=2"},
            "takes no parameter 'beta'.*its parameters: eps",
        ),
        ({"method": "rs_grpo", "method_params": "beta"}, 'expected "name=value"'),
        ({"method": "rs_grpo", "method_params": "beta=two"}, "is not a number"),
        ({"method": "rs_grpo", "method_params": "beta=2,beta=3"}, "twice"),
        ({"method": "pkpo", "method_params": "k=4"}, "takes no parameter 'k'"),
    ],
)
def test_bad_method_configs(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig().replace(**changes)


@pytest.mark.parametrize("method, params", [("rs_grpo", "beta=0"), ("w_reinforce", "lam=-0.5")])
def test_bad_method_param_values_are_refused_before_any_work(tmp_path, method, params):
    with pytest.raises(ValueError, match=f"method {method!r} with method_params"):
        tiny_config(tmp_path, method=method, k="1", method_params=params, steps=1, eval_problems=0)
    assert not (tmp_path / "run").exists()


def test_method_params_from_toml_and_cli(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('method = "rs_grpo"\nmethod_params = "beta=4"\n')
    assert TrainConfig.from_toml(path).method_kwargs() == {"beta": 4.0}
    from pkpo.rl.cli import train_main

    rc = train_main(
        ["--method", "w_reinforce", "--method-params", "lam=x", "--out", str(tmp_path / "r")]
    )
    assert rc == 2


def test_entropy_bonus_combines_with_any_method(tmp_path):
    """entropy_coef changes the update of GRPO as it does PKPO's (the same first step otherwise)."""
    finals = {}
    for coef in (0.0, 0.5):
        model = tiny_gpt()
        train(
            tiny_config(
                tmp_path / f"e{coef}",
                method="grpo",
                k="1",
                steps=1,
                eval_problems=0,
                entropy_coef=coef,
            ),
            model,
            DigitTask(),
            progress=False,
        )
        finals[coef] = model.state_dict()
    assert any(not torch.equal(a, b) for a, b in zip(finals[0.0].values(), finals[0.5].values()))


def test_grid_names_cover_the_family():
    assert run_spec("maxrl", 10) == {"method": "maxrl", "k": "1"}
    assert run_spec("loo", 10) == run_spec("k1", 10) | {"k": "1"}
    assert run_spec("entropy", 10) == {"method": "pkpo", "k": "1", "entropy_coef": 0.05}
    with pytest.raises(ValueError, match="unknown run 'passk_training'"):
        run_spec("passk_training", 10)  # takes k: not a grid name of its own
    assert pkpo.BASELINES  # the baseline field still lists the transform variants
