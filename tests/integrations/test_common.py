"""The adapters' shared helpers: options, the step clock, group layouts, post-import hooks."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch extra: make test installs it")
import torch  # noqa: E402

import pkpo  # noqa: E402
from pkpo.integrations import _common  # noqa: E402


def test_parse_options_constant_and_schedule():
    options = _common.parse_options(k="4", baseline="loo")
    assert (options.k_at(None), options.k_at(10_000), options.baseline) == (4, 4, "loo")
    assert options.scale == _common.DEFAULT_SCALE == "mean_abs"
    assert _common.parse_options(k=2, scale="none").scale == "none"
    annealed = _common.parse_options(schedule={"kind": "step", "k_start": 8, "k_end": 2, "at": 5})
    assert [annealed.k_at(step) for step in (0, 4, 5)] == [8, 8, 2]
    assert annealed.baseline == "loo_minus_one"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "set k"),
        ({"k": 2, "schedule": "4"}, "not both"),
        ({"k": 1.5}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"k": 2, "baseline": "grpo"}, "unknown baseline"),
        ({"k": 2, "scale": "x"}, "unknown scale 'x'; expected one of none, n_over_k, mean_abs"),
        ({"schedule": "cosine:8->1"}, "cannot read k schedule"),
        ({"k": 4, "rollout_n": 0}, "rollout_n must be >= 1"),
        ({"k": 4, "baseline": "loo", "rollout_n": 4}, "needs at least 5"),
    ],
)
def test_parse_options_errors_name_the_source(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        _common.parse_options(**kwargs, source="my config")
    assert str(error.value).startswith("my config")


def test_options_from_mapping_rejects_unknown_keys_and_non_mappings():
    with pytest.raises(ValueError, match="unknown key"):
        _common.options_from_mapping({"k": 2, "variant": "s"}, source="algorithm.pkpo")
    with pytest.raises(ValueError, match="must be a mapping"):
        _common.options_from_mapping(8, source="algorithm.pkpo")
    # keys the caller reads itself are accepted, not parsed
    section = {"k": 2, "scale": "n_over_k", "val_ks": [1, 2]}
    options = _common.options_from_mapping(section, source="s", other_keys=("val_ks",))
    assert (options.k_at(None), options.scale) == (2, "n_over_k")
    with pytest.raises(ValueError, match="unknown key"):
        _common.options_from_mapping(section, source="s")


def test_step_clock():
    clock = _common.StepClock()
    assert clock.step is None
    clock.publish(np.int64(7))
    assert clock.step == 7
    with pytest.raises(ValueError, match=">= 0"):
        clock.publish(-1)
    clock.reset()
    assert clock.step is None


@pytest.mark.parametrize("scale", ["none", "n_over_k", "mean_abs"])
def test_consecutive_and_grouped_layouts_agree_with_transform(scale):
    rng = np.random.default_rng(0)
    rewards = torch.tensor(rng.random(12))
    options = _common.parse_options(k=2, scale=scale)
    consecutive, estimate = _common.consecutive_advantages(rewards, 4, 2, options, engine="test")
    expected, info = pkpo.transform(rewards.reshape(3, 4), 2, scale=scale, return_info=True)
    torch.testing.assert_close(consecutive, expected.reshape(-1))
    assert estimate == pytest.approx(float(info.estimate.mean()))

    ids = np.repeat(["x", "y", "z"], 4)
    order = rng.permutation(12)
    grouped, grouped_estimate = _common.grouped_advantages(
        rewards[order], ids[order], 2, options, engine="test"
    )
    torch.testing.assert_close(grouped, expected.reshape(-1)[order])
    assert grouped_estimate == pytest.approx(estimate)


def test_default_scale_divides_by_the_mean_abs_of_the_whole_call():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    options = _common.parse_options(k=2)  # the adapters' default scale
    advantages, _ = _common.consecutive_advantages(rewards, 4, 2, options, engine="test")
    paper = pkpo.transform(rewards.view(2, 4), 2).reshape(-1)  # scale="none": the paper's values
    torch.testing.assert_close(advantages, paper / paper.abs().mean())
    assert float(advantages.abs().mean()) == pytest.approx(1.0)
    # one normaliser for both groups: their ratio is the paper's
    assert float(advantages[0] / advantages[4]) == pytest.approx(float(paper[0] / paper[4]))


def test_invalid_rows_leave_their_group():
    rewards = torch.tensor([1.0, float("nan"), 0.0, 1.0, 0.0, 0.0])
    valid = ~torch.isnan(rewards)
    options = _common.parse_options(k=2, scale="none")
    advantages, _ = _common.consecutive_advantages(rewards, 3, 2, options, valid=valid, engine="t")
    assert advantages[1] == 0
    torch.testing.assert_close(advantages[[0, 2]], pkpo.transform(torch.tensor([1.0, 0.0]), 2))
    with pytest.raises(
        ValueError,
        match=r"^t: the group of rows 0\.\.1 has 1 sample\(s\), fewer than the 2 that k=2",
    ):  # rows 0..1 keep one valid row
        _common.consecutive_advantages(rewards, 2, 2, options, valid=valid, engine="t")


def test_parse_val_ks():
    assert _common.parse_val_ks(None, source="s") == ()
    assert _common.parse_val_ks([8, 1, 4, 4], source="s", largest_n=8) == (1, 4, 8)
    assert _common.parse_val_ks("2", source="s") == (2,)
    with pytest.raises(ValueError, match=r"^val: k=16 exceeds the 8 samples .*\(n_eval=8\)"):
        _common.parse_val_ks([1, 16], source="val", largest_n=8, n_name="n_eval")
    with pytest.raises(ValueError, match="^val: every k must be >= 1"):
        _common.parse_val_ks([0], source="val")
    with pytest.raises(ValueError, match="^val: every k must be an integer"):
        _common.parse_val_ks(["four"], source="val")


def test_validation_metrics_equal_pkpo_metrics_reports():
    rng = np.random.default_rng(3)
    rewards = [rng.random(8), rng.random(8), rng.random(5)]  # ragged: a prompt with 5 samples
    found = _common.validation_metrics(rewards, (1, 4, 8))
    report = pkpo.metrics.maxg_at_k_report(rewards, [1, 4, 8], skip_insufficient=True)
    for k in (1, 4, 8):
        assert found[f"maxg@{k}"] == pytest.approx(report[k].estimate)
        assert found[f"maxg@{k}/se"] == pytest.approx(report[k].se)
    assert report[8].n_problems == 2  # the 5-sample prompt is left out at k = 8
    assert not any(name.startswith("pass@") for name in found)  # continuous: no pass@k


def test_validation_metrics_pass_at_k_from_binary_rewards_or_given_correctness():
    correct = [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1]]
    found = _common.validation_metrics(correct, (1, 2))
    # per prompt rho(4, c, 2) = 1 - C(4-c, 2)/C(4, 2): 0.5, 0, 1
    assert found["pass@2"] == pytest.approx(0.5)
    assert found["pass@2"] == pytest.approx(found["maxg@2"])  # maxg@k = pass@k on 0/1 rewards
    report = pkpo.metrics.pass_at_k_report(correct, [1, 2])
    assert found["pass@1/se"] == pytest.approx(report[1].se)

    scores = [[0.2, 0.9, 0.1, 0.4], [0.3, 0.3, 0.3, 0.3]]
    found = _common.validation_metrics(scores, (2,), correct_per_prompt=[[0, 1, 0, 0], [0] * 4])
    assert found["pass@2"] == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert found["maxg@2"] == pytest.approx(
        np.mean([float(pkpo.maxg_at_k(np.array(row), 2)) for row in scores])
    )


def test_validation_metrics_leave_out_what_cannot_be_estimated():
    assert _common.validation_metrics([], (1,)) == {}
    one_prompt = _common.validation_metrics([[0.0, 1.0]], (1, 2, 4))
    assert set(one_prompt) == {
        "maxg@1",
        "maxg@2",
        "pass@1",
        "pass@2",
    }  # no SE of one prompt; k=4 > n


def test_when_imported_runs_now_or_after_the_import(tmp_path, monkeypatch):
    (tmp_path / "pkpo_hook_target.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    assert (
        _common.when_imported("pkpo_hook_target", lambda module: seen.append(module.VALUE)) is False
    )
    assert seen == [] and "pkpo_hook_target" not in sys.modules  # registering imports nothing
    try:
        import pkpo_hook_target

        assert seen == [41] and pkpo_hook_target.VALUE == 41
        assert _common.when_imported("pkpo_hook_target", lambda module: seen.append(0)) is True
        assert seen == [41, 0]
    finally:
        sys.modules.pop("pkpo_hook_target", None)


def test_a_failing_hook_does_not_break_the_import(tmp_path, monkeypatch, caplog):
    (tmp_path / "pkpo_hook_target2.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def broken(module):
        raise RuntimeError("boom")

    _common.when_imported("pkpo_hook_target2", broken)
    try:
        import pkpo_hook_target2

        assert pkpo_hook_target2.VALUE == 1
        assert "boom" in caplog.text
    finally:
        sys.modules.pop("pkpo_hook_target2", None)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int64, torch.bool])
def test_consecutive_advantages_accept_low_precision_and_integer_rewards(dtype):
    rewards = torch.tensor([0, 1, 0, 1, 1, 1, 0, 0]).to(dtype)
    options = _common.parse_options(k=2, scale="none")
    advantages, estimate = _common.consecutive_advantages(rewards, 4, 2, options, engine="test")
    correct = np.array([[0, 1, 0, 1], [1, 1, 0, 0]])
    expected = pkpo.transform(correct.astype(np.float64), 2)
    np.testing.assert_allclose(advantages.float().numpy(), expected.reshape(-1), atol=2e-3)
    assert estimate == pytest.approx(float(np.mean(pkpo.pass_at_k(correct, 2))), abs=2e-3)


@pytest.mark.parametrize(
    "scores, group_size, valid, message",
    [
        ([1.0, 0.0, 1.0, 0.0], 2, None, "scores must be a 1-D torch tensor or numpy array"),
        (torch.zeros(2, 2), 2, None, r"scores must be 1-D .*got shape \(2, 2\)"),
        (torch.zeros(4), 2.0, None, "the group size must be an integer; got 2.0"),
        (torch.zeros(4), 0, None, "the group size must be >= 1; got 0"),
        (torch.zeros(4), 2, torch.tensor([1, 0, 1, 1]), "valid must be a boolean Tensor"),
        (torch.zeros(4), 2, torch.ones(3, dtype=torch.bool), r"valid has shape \(3,\)"),
        (torch.zeros(4), 2, np.ones(4, dtype=bool), "valid must be a boolean Tensor"),
        (np.zeros(4), 2, [True] * 4, "valid must be a boolean ndarray"),
    ],
)
def test_consecutive_advantages_refuse_bad_input_with_one_clear_error(
    scores, group_size, valid, message
):
    options = _common.parse_options(k=2, scale="none")
    with pytest.raises(ValueError, match=message) as error:
        _common.consecutive_advantages(scores, group_size, 2, options, valid=valid, engine="E")
    assert str(error.value).startswith("E: ") and "\n" not in str(error.value)


def test_grouped_advantages_refuse_ids_of_mixed_types_as_transform_grouped_does():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    options = _common.parse_options(k=1, scale="none")
    for ids in ([1, "1", 1, "1"], np.array([1, "1", 1, "1"], dtype=object)):
        with pytest.raises(ValueError) as adapter_error:
            _common.grouped_advantages(rewards, ids, 1, options, engine="E")
        with pytest.raises(ValueError) as math_error:
            pkpo.transform_grouped(rewards, ids, 1)
        assert str(adapter_error.value) == f"E: {math_error.value}"
    # ids of one type still group as before: two groups of 2
    advantages, _ = _common.grouped_advantages(rewards, [1, 2, 1, 2], 1, options, engine="E")
    torch.testing.assert_close(advantages, pkpo.transform_grouped(rewards, [1, 2, 1, 2], 1))


@pytest.mark.parametrize(
    "value, expected",
    [(3, 3), (np.int64(3), 3), ("3", 3), (" 3 ", 3), (np.array(3), 3), (torch.tensor(3), 3)],
)
def test_as_int_accepts_integers_and_decimal_strings(value, expected):
    assert _common.as_int(value, "n") == expected


@pytest.mark.parametrize("value", [True, 2.0, 2.5, "2.0", "two", None, np.array(2.0), [2]])
def test_as_int_refuses_everything_else(value):
    with pytest.raises(ValueError, match=r"^src: n must be an integer"):
        _common.as_int(value, "n", source="src")


def test_step_clock_scoped_step_wins_and_ends_with_its_block():
    clock = _common.StepClock()
    clock.publish(3)
    with clock.at(7):
        assert clock.step == 7
        with clock.at(None):  # no step: the enclosing one stays
            assert clock.step == 7
    assert clock.step == 3
    with pytest.raises(ValueError, match="the training step must be >= 0"):
        with clock.at(-1):
            pass


# --- any estimator of pkpo.advantages by name
# ------------------------------------------------------


def test_parse_options_select_any_estimator_by_name():
    assert _common.parse_options(k=2).method == "pkpo"
    for name in pkpo.advantages.names():
        spec = pkpo.advantages.spec(name)
        options = _common.parse_options(**({"k": 2} if spec.takes_k else {}), method=name)
        assert options.method == name and options.scale == _common.DEFAULT_SCALE
        assert (options.k_at(None) == 2) if spec.takes_k else (options.k_at(None) is None)
    rs = _common.parse_options(method="rs_grpo", params="beta=3")
    assert rs.params == (("beta", 3.0),) and rs.method_params(None) == {"beta": 3.0}
    assert _common.parse_options(method="rs_grpo", params={"beta": 1}).params == (("beta", 1.0),)
    assert _common.parse_options(k=4, baseline="loo").method_params(4) == {
        "k": 4,
        "baseline": "loo",
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "nope"}, "unknown advantage estimator 'nope'; expected one of pkpo, grpo"),
        ({"method": "grpo", "k": 2}, "method 'grpo' takes no k"),
        ({"method": "maxrl", "schedule": "4->2@5"}, "method 'maxrl' takes no k"),
        ({"method": "passk_training"}, "set k"),
        ({"method": "rloo", "baseline": "loo"}, "baseline applies to method 'pkpo' only"),
        ({"method": "rloo", "scale": "n_over_k"}, "scale 'n_over_k' multiplies by n/k"),
        (
            {"method": "rs_grpo", "params": "gamma=1"},
            "has no parameter 'gamma'; its parameters: beta",
        ),
        ({"method": "rs_grpo", "params": "beta=x"}, "beta must be a finite number"),
        ({"method": "rs_grpo", "params": "beta"}, "params must read 'name=value,...'"),
        ({"k": 2, "params": "beta=1"}, "method 'pkpo' has no parameter 'beta'"),
        ({"method": "passk_training", "k": 4, "rollout_n": 3}, "needs at least 4"),
    ],
)
def test_bad_method_options_give_one_line_naming_the_source(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        _common.parse_options(**kwargs, source="src")
    assert str(error.value).startswith("src: ") and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "method, k",
    [("grpo", None), ("rloo", None), ("maxrl", None), ("rs_grpo", None), ("passk_training", 2)],
)
@pytest.mark.parametrize("scale", ["none", "mean_abs"])
def test_both_layouts_give_the_selected_methods_advantages(method, k, scale):
    rng = np.random.default_rng(4)
    rewards = torch.tensor(rng.integers(0, 2, 12), dtype=torch.float64)
    options = _common.parse_options(**({"k": k} if k else {}), method=method, scale=scale)
    params = {"k": k} if k else {}
    expected = pkpo.advantages.compute(method, rewards.view(3, 4), scale=scale, **params).reshape(
        -1
    )
    consecutive, estimate = _common.consecutive_advantages(rewards, 4, k, options, engine="E")
    torch.testing.assert_close(consecutive, expected)
    assert estimate is None  # the pass@k / maxg@k estimate comes with PKPO only
    pkpo_advantages, _ = _common.consecutive_advantages(
        rewards, 4, 2, _common.parse_options(k=2, scale=scale), engine="E"
    )
    assert not torch.allclose(consecutive, pkpo_advantages)  # the method changed them

    ids = np.repeat(np.array(["x", "y", "z"], dtype=object), 4)
    order = rng.permutation(12)
    grouped, _ = _common.grouped_advantages(rewards[order], ids[order], k, options, engine="E")
    torch.testing.assert_close(grouped, expected[order])


def test_grouped_layout_of_other_methods_keeps_ragged_groups_and_refuses_mixed_ids():
    rewards = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    ids = ["a", "b", "a", "b", "a", "b", "b"]  # a: 3 rows, b: 4 rows
    options = _common.parse_options(method="rloo", scale="none")
    got, _ = _common.grouped_advantages(rewards, ids, None, options, engine="E")
    a, b = rewards[[0, 2, 4]], rewards[[1, 3, 5, 6]]
    np.testing.assert_allclose(got[[0, 2, 4]], pkpo.advantages.compute("rloo", a))
    np.testing.assert_allclose(got[[1, 3, 5, 6]], pkpo.advantages.compute("rloo", b))
    with pytest.raises(ValueError, match="^E: group ids mix types"):
        _common.grouped_advantages(rewards[:4], [1, "1", 1, "1"], None, options, engine="E")
    capped = _common.parse_options(method="rloo", rollout_n=3)
    with pytest.raises(ValueError, match="group 'b' has 4 rows but rollout_n=3"):
        _common.grouped_advantages(rewards, ids, None, capped, engine="E")


def test_binary_only_methods_refuse_other_rewards_with_the_engines_name():
    options = _common.parse_options(method="maxrl")
    with pytest.raises(ValueError, match="^E: 'maxrl' takes binary rewards only") as error:
        _common.consecutive_advantages(
            torch.tensor([0.5, 1.0, 0.0, 1.0]), 4, None, options, engine="E"
        )
    assert "\n" not in str(error.value)
