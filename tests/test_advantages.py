"""pkpo.advantages: each estimator against its objective (by exact enumeration) and its authors'.

- Objective: on a Bernoulli bandit (2^n outcomes) and on the 4-outcome softmax bandit of
  tests/test_unbiasedness.py (4^n outcomes), E[sum_i A_i grad log pi(y_i)] is computed exactly and
  compared with the gradient of what each docstring says the estimator is unbiased for. The
  biased estimators get tests that state the measured bias instead.
- Formula: each estimator against the authors' formula written as a loop over one group
  (tests/oracle.py), on random binary, continuous and tied groups, with and without masks.
- Backends, jit, torch.compile, bad inputs, and the registry (names, get, spec, compute).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import pkpo
from pkpo import advantages as adv

import oracle
from test_unbiasedness import REWARDS, THETA, maxg_gradient, softmax

PS = (0.1, 0.3, 0.7)
BINARY = tuple(name for name in adv.names() if adv.spec(name).rewards == "binary")
MIN_N = {"rloo": 2, "tzsm": 2}  # the estimators that need a second sample


def params_for(name: str, k: int = 2) -> dict:
    return {"k": k} if adv.spec(name).takes_k else {}


def estimator(name: str, **params):
    """A function of a (m, n) reward array, for the enumeration helpers."""
    return lambda rewards: adv.compute(name, rewards, **params)


# --- exact expected updates against the stated objective -------------------------------------

# name -> E[sum_i A_i grad log pi] as a function of n, k and grad(j) = grad pass@j / maxg@j
# (grad(0) = 0): the "unbiased for" column of the module docstring, one formula each.
EXACT = {
    "pkpo": lambda n, k, grad: grad(k),
    "dr_grpo": lambda n, k, grad: (n - 1) * grad(1),
    "rloo": lambda n, k, grad: n * grad(1),
    "maxrl": lambda n, k, grad: n * sum(grad(j) / j for j in range(1, n)),
    "tailrl": lambda n, k, grad: n * sum(grad(j) / j for j in range(1, n)),
    "w_reinforce": lambda n, k, grad: n * 1.1 * grad(1),
    "tzsm": lambda n, k, grad: grad(n),
    "pkpo_two_baselines": lambda n, k, grad: ((n - k) * grad(k) + k * grad(k - 1)) / (n - 1),
}


def exact_cases(n_max: int):
    for name in EXACT:
        takes_k = adv.spec(name).takes_k
        # pkpo_two_baselines' closed form divides by n - 1 (at n = 1 it is r: tested below)
        smallest = 2 if name in ("rloo", "tzsm", "pkpo_two_baselines") else 1
        for n in range(smallest, n_max + 1):
            for k in range(1, n + 1) if takes_k else [None]:
                if name == "pkpo" and k == 1 and n == 1:
                    continue  # loo_minus_one at k = 1 needs n >= 2
                yield name, n, k


def bernoulli_pass_gradient(p: float, j: int) -> float:
    """d/dtheta pass@j = d/dtheta (1 - (1 - p)^j), p = sigmoid(theta); 0 for j = 0."""
    return j * (1 - p) ** (j - 1) * p * (1 - p) if j > 0 else 0.0


@pytest.mark.parametrize("name, n, k", list(exact_cases(6)))
@pytest.mark.parametrize("p", PS)
def test_exact_expected_update_on_a_bernoulli_bandit(name, n, k, p):
    params = {} if k is None else {"k": k}
    got = oracle.bernoulli_expected_update(estimator(name, **params), p, n)
    want = EXACT[name](n, k or n, lambda j: bernoulli_pass_gradient(p, j))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-14)


def reward_kinds(name: str):
    """The bandit rewards an estimator takes (binary-only ones refuse the others: tested below)."""
    return ["binary"] if adv.spec(name).rewards == "binary" else sorted(REWARDS)


@pytest.mark.parametrize(
    "name, n, k, kind", [(*c, kind) for c in exact_cases(5) for kind in reward_kinds(c[0])]
)
def test_exact_expected_update_on_a_categorical_bandit(name, n, k, kind):
    r = REWARDS[kind]
    params = {} if k is None else {"k": k}
    got = oracle.categorical_expected_update(estimator(name, **params), softmax(THETA), r, n)

    def grad(j):
        return maxg_gradient(THETA, r, j) if j > 0 else np.zeros(4)

    np.testing.assert_allclose(got, EXACT[name](n, k or n, grad), rtol=0, atol=1e-13)


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_pkpo_is_unbiased_for_every_baseline(baseline):
    r, n, k = REWARDS["continuous"], 5, 3
    fn = estimator("pkpo", k=k, baseline=baseline)
    got = oracle.categorical_expected_update(fn, softmax(THETA), r, n)
    np.testing.assert_allclose(got, maxg_gradient(THETA, r, k), atol=1e-14)


def test_the_exact_tests_have_power():
    """The enumeration tells RLOO (pass@1) from PKPO (pass@2), and MaxRL's T = n - 1 from n."""
    r = REWARDS["continuous"]
    got = oracle.categorical_expected_update(estimator("rloo"), softmax(THETA), r, 4)
    assert np.abs(got / 4 - maxg_gradient(THETA, r, 2)).max() > 0.01
    p, n = 0.3, 4
    got = oracle.bernoulli_expected_update(estimator("maxrl"), p, n)
    with_t_n = n * sum(bernoulli_pass_gradient(p, j) / j for j in range(1, n + 1))
    assert abs(got - with_t_n) > 0.05


# --- the biased estimators: the measured bias ------------------------------------------------


def test_two_baselines_pkpo_is_biased_as_measured_in_the_issue():
    """MaxRL's PKPO port, n = 4, k = 2, p = 0.3: E = 0.336 (times k/n); grad pass@2 = 0.294."""
    p, n, k = 0.3, 4, 2
    biased = oracle.bernoulli_expected_update(estimator("pkpo_two_baselines", k=k), p, n)
    raw = oracle.bernoulli_expected_update(
        lambda rewards: oracle.per_group(oracle.two_baselines_group_raw, rewards, k=k), p, n
    )
    unbiased = oracle.bernoulli_expected_update(estimator("pkpo", k=k), p, n)
    assert biased == pytest.approx(42 / 125, abs=1e-15)  # 0.336 exactly, by Fractions: 42/125
    assert raw * k / n == pytest.approx(biased, abs=1e-15)  # the repository's own formula agrees
    assert unbiased == pytest.approx(147 / 500, abs=1e-15)  # 0.294 = d/dtheta pass@2
    assert bernoulli_pass_gradient(p, 2) == pytest.approx(147 / 500, abs=1e-15)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_grpo_is_biased_for_every_multiple_of_the_pass_at_1_gradient(n):
    """E[grpo] / (d pass@1) moves with p for n >= 4: no constant makes it unbiased for pass@1.

    At n = 2 and 3 the groups with signal (c = 1 and c = n - 1) share one std, so on 0/1 rewards
    GRPO is then a constant times RLOO: unbiased up to that constant.
    """
    ratios = [
        oracle.bernoulli_expected_update(estimator("grpo"), p, n) / bernoulli_pass_gradient(p, 1)
        for p in PS
    ]
    if n <= 3:
        assert max(ratios) - min(ratios) < 1e-12 * max(ratios)
        return
    assert max(ratios) - min(ratios) > 0.01 * max(ratios)
    # on continuous rewards it is not even parallel to grad E[r]
    r = REWARDS["continuous"]
    got = oracle.categorical_expected_update(estimator("grpo"), softmax(THETA), r, n)
    target = maxg_gradient(THETA, r, 1)
    cosine = got @ target / np.linalg.norm(got) / np.linalg.norm(target)
    assert cosine < 0.9975


def test_rs_grpo_is_biased_and_the_bias_shrinks_with_n():
    """E[rs_grpo] / n against grad (1/beta) log E[e^{beta r}]: the error falls with n, never 0."""
    r, beta = REWARDS["continuous"], 2.0
    probs = softmax(THETA)
    weights = np.exp(beta * r)
    target = (probs * weights) @ (np.eye(4) - probs) / (probs @ weights) / beta
    errors = []
    for n in range(2, 7):
        got = oracle.categorical_expected_update(estimator("rs_grpo", beta=beta), probs, r, n) / n
        errors.append(np.linalg.norm(got - target) / np.linalg.norm(target))
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] > 0.2


@pytest.mark.parametrize("n, k", [(4, 2), (5, 2), (6, 3)])
def test_passk_training_is_biased_only_through_its_std_division(n, k):
    """Times (sigma + 1e-6) it is (n/k - 1) grad pass@k exactly; as published it moves with p."""

    def undivided(rewards):
        c = rewards.sum(-1, keepdims=True)
        rho = 1 - np.vectorize(math.comb)(n - c.astype(int), k) / math.comb(n, k)
        return adv.passk_training(rewards, k=k) * (np.sqrt(rho * (1 - rho)) + 1e-6)

    ratios = []
    for p in PS:
        want = (n / k - 1) * bernoulli_pass_gradient(p, k)
        assert oracle.bernoulli_expected_update(undivided, p, n) == pytest.approx(want, rel=1e-9)
        got = oracle.bernoulli_expected_update(estimator("passk_training", k=k), p, n)
        ratios.append(got / want)
    assert max(ratios) - min(ratios) > 0.05 * max(ratios)


def test_passk_training_vanishes_at_k_equal_n():
    outcomes = (np.arange(16)[:, None] >> np.arange(4) & 1).astype(float)
    assert np.all(adv.passk_training(outcomes, k=4) == 0)


# --- agreement with the authors' formulas on random groups --------------------------------------

AUTHORS = {
    "pkpo": (lambda r, k: oracle.s_loo_minus_one(r, k), {"k": 3}),
    "grpo": (oracle.grpo_group, {}),
    "dr_grpo": (oracle.dr_grpo_group, {}),
    "rloo": (oracle.rloo_group, {}),
    "maxrl": (oracle.maxrl_group, {}),
    "tailrl": (oracle.tailrl_group, {}),
    "rs_grpo": (oracle.rs_grpo_group, {}),
    "w_reinforce": (oracle.w_reinforce_group, {}),
    "tzsm": (oracle.tzsm_group, {}),
    "passk_training": (oracle.passk_training_group, {"k": 3}),
    "pkpo_two_baselines": (oracle.two_baselines_group, {"k": 3}),
}
OTHER_PARAMS = {
    "grpo": {"eps": 1e-4},
    "rs_grpo": {"beta": -0.7},
    "w_reinforce": {"lam": 0.25},
    "pkpo": {"k": 1},
    "passk_training": {"k": 1},
    "pkpo_two_baselines": {"k": 1},
}


def random_groups(rng, kind: str, rows: int = 60, n: int = 8):
    """Rewards (rows, n) and a mask that leaves every row at least 3 and at most n valid samples."""
    if kind == "binary":
        rewards = (rng.random((rows, n)) < rng.random((rows, 1))).astype(float)
    elif kind == "ties":
        rewards = rng.integers(-2, 3, (rows, n)) / 2.0
    else:
        rewards = rng.normal(size=(rows, n)) * 3.0
    lengths = rng.integers(3, n + 1, rows)
    mask = np.arange(n)[None, :] < lengths[:, None]
    mask = np.take_along_axis(mask, rng.permuted(np.tile(np.arange(n), (rows, 1)), axis=1), axis=1)
    return rewards, mask


def group_kinds(name: str):
    return ["binary"] if adv.spec(name).rewards == "binary" else ["binary", "continuous", "ties"]


@pytest.mark.parametrize(
    "name, kind", [(name, kind) for name in adv.names() for kind in group_kinds(name)]
)
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("other", [False, True], ids=["defaults", "other-params"])
def test_matches_the_authors_formula(name, kind, masked, other, rng):
    group_fn, params = AUTHORS[name]
    params = dict(params, **(OTHER_PARAMS.get(name, {}) if other else {}))
    rewards, mask = random_groups(rng, kind)
    mask = mask if masked else None
    got = adv.compute(name, rewards, mask=mask, **params)
    k = params.get("k")
    if name == "pkpo" and k == 1:  # the k = 1 "loo_minus_one" convention: leave-one-out / n
        want = oracle.per_group(lambda r: [a / len(r) for a in oracle.rloo_group(r)], rewards, mask)
    else:
        want = oracle.per_group(group_fn, rewards, mask, **params)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tailrl_equals_maxrl_bit_for_bit_on_binary_rewards(rng):
    rewards, mask = random_groups(rng, "binary", rows=400, n=16)
    for m in (None, mask):
        for x in (rewards, rewards.astype(np.float32), rewards.astype(bool)):
            np.testing.assert_array_equal(adv.tailrl(x, mask=m), adv.maxrl(x, mask=m))


def test_tzsm_equals_pkpo_at_k_equal_n_and_ties_at_the_top_give_zero(rng):
    rewards = rng.integers(0, 4, (200, 6)).astype(float)
    np.testing.assert_allclose(adv.tzsm(rewards), pkpo.transform(rewards, 6), atol=1e-15)
    tied = np.array([[0.2, 1.0, 0.5, 1.0]])
    assert adv.tzsm(tied).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_pkpo_equals_transform_and_rloo_is_pkpo_at_k_1_times_n(rng):
    rewards, mask = random_groups(rng, "continuous")
    for baseline in pkpo.BASELINES:
        np.testing.assert_array_equal(
            adv.pkpo(rewards, k=2, baseline=baseline, mask=mask),
            pkpo.transform(rewards, 2, baseline, mask),
        )
    rloo_via_pkpo = adv.compute("pkpo", rewards, k=1, scale="n_over_k")
    np.testing.assert_allclose(rloo_via_pkpo, adv.rloo(rewards), atol=1e-12)


def test_two_baselines_with_n_over_k_gives_the_repository_values(rng):
    rewards, mask = random_groups(rng, "binary")
    got = adv.compute("pkpo_two_baselines", rewards, k=2, mask=mask, scale="n_over_k")
    want = oracle.per_group(oracle.two_baselines_group_raw, rewards, mask, k=2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", adv.names())
def test_singletons_all_equal_and_shifts(name):
    """What each docstring promises for n = 1, all-equal rewards and (where taken) negative ones."""
    params = params_for(name, k=1)
    if MIN_N.get(name, 1) > 1:
        with pytest.raises(ValueError, match="n >= 2"):
            adv.compute(name, np.ones((3, 1)), **params)
    elif name != "pkpo":  # pkpo at k = 1 needs n >= 2 too ("loo_minus_one"; test_transforms.py)
        single = adv.compute(name, np.array([[0.0], [1.0]]), **params)
        expected = {"w_reinforce": [[-1.0], [0.1]], "pkpo_two_baselines": [[0.0], [1.0]]}
        assert single.tolist() == expected.get(name, [[0.0], [0.0]])
    equal = adv.compute(name, np.ones((2, 5)), **params_for(name))
    assert np.all(equal == (0.1 if name == "w_reinforce" else 0.0))
    if adv.spec(name).rewards == "any" and name != "pkpo":
        r = np.random.default_rng(1).normal(size=(4, 6))
        np.testing.assert_allclose(adv.compute(name, r - 3.0), adv.compute(name, r), atol=1e-12)


def test_doctests():
    result = doctest.testmod(adv, extraglobs={"np": np})
    assert result.attempted > 0 and result.failed == 0


# --- backends --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", adv.names())
def test_torch_matches_numpy_and_keeps_dtype(name, rng):
    torch = pytest.importorskip("torch")
    rewards, mask = random_groups(rng, "binary" if name in BINARY else "continuous")
    params = params_for(name, k=3)
    want = adv.compute(name, rewards, mask=mask, **params)
    got = adv.compute(name, torch.from_numpy(rewards), mask=torch.from_numpy(mask), **params)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    x32 = torch.from_numpy(rewards).float()
    got32 = adv.compute(name, x32, mask=torch.from_numpy(mask), **params)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", adv.names())
def test_jax_matches_numpy_also_under_jit(name, rng):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rewards, mask = random_groups(rng, "binary" if name in BINARY else "continuous")
    params = params_for(name, k=3)
    want = adv.compute(name, rewards, mask=mask, **params)
    x, m = jnp.asarray(rewards, dtype=jnp.float32), jnp.asarray(mask)
    eager = adv.compute(name, x, mask=m, **params)
    assert isinstance(eager, jax.Array) and eager.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(eager), want, rtol=2e-5, atol=2e-5)
    jitted = jax.jit(
        lambda r, m: adv.compute(name, r, mask=m, validate=False, scale="mean_abs", **params)
    )
    np.testing.assert_allclose(
        np.asarray(jitted(x, m)),
        np.asarray(adv.compute(name, x, mask=m, scale="mean_abs", **params)),
        rtol=1e-6,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="jax.jit"):
        jax.jit(lambda r: adv.compute(name, r, **params))(x)


@pytest.mark.slow
@pytest.mark.parametrize("name", adv.names())
def test_torch_compile_with_validate_false(name, rng):
    """One graph (fullgraph=True: no host code, no graph break), dense and ragged."""
    torch = pytest.importorskip("torch")
    torch._dynamo.reset()  # a fresh recompilation budget for each estimator
    rewards, mask = random_groups(rng, "binary" if name in BINARY else "continuous", rows=8)
    params = params_for(name, k=3)
    compiled = torch.compile(
        lambda r, m: adv.compute(name, r, mask=m, validate=False, **params), fullgraph=True
    )
    x, m = torch.from_numpy(rewards), torch.from_numpy(mask)
    want = adv.compute(name, rewards, mask=mask, **params)
    np.testing.assert_allclose(compiled(x, m).numpy(), want, rtol=1e-12, atol=1e-12)
    dense = torch.compile(lambda r: adv.compute(name, r, validate=False, **params), fullgraph=True)
    want = adv.compute(name, rewards, **params)
    np.testing.assert_allclose(dense(x).numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", adv.names())
def test_half_precision_keeps_its_dtype(name, rng):
    """float16 (numpy) and bfloat16 (torch) in, the same dtype out; the arithmetic is wider."""
    torch = pytest.importorskip("torch")
    rewards, mask = random_groups(rng, "binary" if name in BINARY else "continuous", rows=20)
    rewards = rewards / 4.0 if name not in BINARY else rewards  # well inside float16's range
    params = params_for(name, k=3)
    want = adv.compute(name, rewards.astype(np.float16).astype(np.float64), mask=mask, **params)
    half = adv.compute(name, rewards.astype(np.float16), mask=mask, **params)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, want, rtol=2e-3, atol=2e-3)
    x16 = torch.from_numpy(rewards).to(torch.bfloat16)
    brain = adv.compute(name, x16, mask=torch.from_numpy(mask), **params)
    assert brain.dtype == torch.bfloat16
    assert np.all(np.isfinite(brain.float().numpy()))


# --- bad input and the registry --------------------------------------------------------------


@pytest.mark.parametrize("name", adv.names())
def test_bad_rewards_raise_value_errors(name):
    params = params_for(name)
    bad = np.array([[0.0, 1.0, np.nan, 1.0]])
    with pytest.raises(ValueError, match="NaN or inf"):
        adv.compute(name, bad, **params)
    with pytest.raises(ValueError, match="NaN or inf"):
        adv.compute(name, np.array([[0.0, np.inf, 1.0]]), **params)
    with pytest.raises(ValueError, match="at least one axis"):
        adv.compute(name, np.float64(1.0), **params)
    with pytest.raises(ValueError, match="mask shape"):
        adv.compute(name, np.zeros((2, 4)), mask=np.ones((2, 3), bool), **params)
    with pytest.raises(ValueError, match="ragged nested list"):
        adv.compute(name, [[0.0, 1.0], [1.0]], **params)
    # NaN in padding is ignored
    adv.compute(name, bad, mask=np.array([[True, True, False, True]]), **params)


@pytest.mark.parametrize("name", BINARY)
def test_binary_only_estimators_refuse_other_rewards(name):
    for rewards in ([[0.0, 0.5, 1.0]], [[1.0, -1.0, 0.0]], np.array([[2, 0, 1]])):
        with pytest.raises(ValueError, match=r"binary rewards only \(0/1\).*group 0"):
            adv.compute(name, rewards, **params_for(name))
    mask = np.array([[True, True, False]])
    adv.compute(name, [[0.0, 1.0, 0.5]], mask=mask, **params_for(name))  # padding: ignored


@pytest.mark.parametrize("name", [name for name in adv.names() if adv.spec(name).takes_k])
def test_k_is_checked(name):
    rewards = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="k"):
        adv.compute(name, rewards, k=5)
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k"):
            adv.compute(name, rewards, k=k)
    with pytest.raises(ValueError, match="needs k"):
        adv.compute(name, rewards)
    with pytest.raises(pkpo.GroupSizeError, match="group 1 has n=2") as error:
        adv.compute(name, rewards, k=3, mask=np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool))
    assert (error.value.group, error.value.n, error.value.need, error.value.k) == (1, 2, 3, 3)
    # with validate=False a ragged group smaller than k gets zeros
    ragged = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])  # an integer mask, like attention_mask
    out = adv.compute(name, rewards, k=3, validate=False, mask=ragged)
    assert np.all(out[1] == 0) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("grpo", {"eps": 0.0}, "eps must be > 0"),
        ("grpo", {"eps": float("nan")}, "eps must be finite"),
        ("rs_grpo", {"beta": 0}, "beta must be nonzero"),
        ("rs_grpo", {"beta": "2"}, "beta must be a real number"),
        ("w_reinforce", {"lam": -0.1}, "lam must be >= 0"),
        ("w_reinforce", {"lam": True}, "lam must be a real number"),
        ("pkpo", {"k": 2, "baseline": "mean"}, "unknown baseline"),
        ("grpo", {"k": 2}, "'grpo' takes no parameter 'k'; its parameters: eps"),
        ("maxrl", {"beta": 2}, "its parameters: none"),
    ],
)
def test_bad_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        adv.compute(name, np.array([[0.0, 1.0, 1.0]]), **params)


def test_too_small_groups_for_leave_one_out_estimators():
    ragged = np.array([[True, True, False], [True, False, False]])
    for name in ("rloo", "tzsm"):
        with pytest.raises(ValueError, match=f"group 1 has n=1 samples; '{name}' needs n >= 2"):
            adv.compute(name, np.ones((2, 3)), mask=ragged)
        out = adv.compute(name, np.ones((2, 3)), mask=ragged, validate=False)
        assert out[1].tolist() == [0.0] * 3
    for name in adv.names():  # an all-padding row
        with pytest.raises(ValueError, match="group 1 has n=0"):
            mask = np.array([[1, 1, 1], [0, 0, 0]])
            adv.compute(name, np.ones((2, 3)), mask=mask, **params_for(name, 1))


@pytest.mark.filterwarnings("ignore:overflow")
def test_overflow_is_an_error_not_inf():
    with pytest.raises(ValueError, match="not fit in float32"):
        adv.tailrl(np.array([[0.0, 3e38, -3e38] * 10], dtype=np.float32))
    with pytest.raises(ValueError, match="'dr_grpo': the advantages do not fit in float64"):
        adv.dr_grpo(np.array([[1.5e308, 1.5e308, -1e308]]))


def test_registry():
    assert adv.names()[0] == "pkpo" and len(set(adv.names())) == 11
    assert set(BINARY) == {"maxrl", "w_reinforce", "passk_training", "pkpo_two_baselines"}
    with_k = [n for n in adv.names() if adv.spec(n).takes_k]
    assert with_k == ["pkpo", "passk_training", "pkpo_two_baselines"]
    assert adv.spec("rs_grpo").defaults == {"beta": 2.0}
    assert adv.spec("pkpo").defaults == {"k": None, "baseline": "loo_minus_one"}
    assert adv.get("maxrl") is adv.maxrl
    for bad in ("GRPO", "loo", None):
        with pytest.raises(ValueError, match="unknown advantage estimator.*pkpo, grpo, dr_grpo"):
            adv.get(bad)
    with pytest.raises(ValueError, match="unknown scale"):
        adv.compute("grpo", np.ones((1, 3)), scale="std")
    with pytest.raises(ValueError, match="takes no k"):
        adv.compute("grpo", np.ones((1, 3)), scale="n_over_k")


def test_scales_match_the_transform(rng):
    rewards, mask = random_groups(rng, "continuous")
    for scale in pkpo.SCALES:
        np.testing.assert_allclose(
            adv.compute("pkpo", rewards, k=2, mask=mask, scale=scale),
            pkpo.transform(rewards, 2, mask=mask, scale=scale),
            rtol=1e-12,
            atol=1e-14,
        )
    got = adv.compute("grpo", rewards, mask=mask, scale="mean_abs")
    assert np.abs(got[mask]).mean() == pytest.approx(1.0, abs=1e-12)
    assert np.all(got[~mask] == 0)
