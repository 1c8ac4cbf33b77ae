"""Inputs at the edges: rewards near the float limit, ids of mixed types, masks and k as users pass
them, ragged lists, scalar counts, jax.jit and autograd, and the precision the docs state."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import pkpo

import oracle  # noqa: E402  (tests/ is on sys.path)



# --- rewards near the float limit: the right answer or a ValueError, never inf ------------------


def test_maxg_at_k_near_the_float64_limit_is_exact():
    g = np.array([-1.7e308, 1.7e308, 0.0])
    # mean of the pair maxima: (1.7e308 + 0 + 1.7e308) / 3, formed without overflow
    assert pkpo.maxg_at_k(g, 2) == pytest.approx(1.7e308 / 3 * 2, rel=1e-15)
    assert pkpo.transform(np.array([-1e308, 1e308]), 1).tolist() == [-1e308, 1e308]


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_transform_near_the_limit_equals_the_scaled_oracle(baseline):
    g = np.array([-1.7e308, 1.7e308, 0.0, 4e307])
    expected = np.asarray(oracle.transform(g / 8, 2, baseline)) * 8  # exact: powers of two
    assert np.allclose(pkpo.transform(g, 2, baseline=baseline), expected, rtol=1e-12, atol=0)


def test_a_result_beyond_the_output_dtype_is_a_value_error():
    torch = pytest.importorskip("torch")
    g = torch.tensor([3e38, -3e38, -3e38], dtype=torch.float32)
    # k = n: loo_minus_one is max(g) - max(g without i) = 6e38 for the best sample, > float32's 3.4e38
    with pytest.raises(ValueError, match="does not fit in float32.*rescale the rewards"):
        pkpo.transform(g, 3)
    exact = pkpo.transform(g.double(), 3)
    assert exact.tolist() == pytest.approx([2 * float(g[0]), 0.0, 0.0])


# --- group ids, masks, k, ragged lists, scalar counts -------------------------------------------


def test_mixed_type_ids_in_a_list_are_refused_not_merged():
    r = np.array([1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="group_ids must be mutually comparable"):
        pkpo.transform_grouped(r, [1, "1", 1, "1"], 1)
    as_strings = pkpo.transform_grouped(r, ["1", "2", "1", "2"], 1)
    assert pkpo.transform_grouped(r, [1, 2, 1, 2], 1).tolist() == as_strings.tolist() == [0.5, -0.5, -0.5, 0.5]


def test_an_integer_attention_mask_works_like_a_bool_mask():
    g = np.array([[0.2, 0.9, 0.4, 7.0], [1.0, 0.0, 1.0, 1.0]])
    attention = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=np.int64)
    assert np.array_equal(pkpo.transform(g, 2, mask=attention), pkpo.transform(g, 2, mask=attention == 1))
    with pytest.raises(ValueError, match="an integer mask must hold only 0 and 1; got \\[2\\]"):
        pkpo.transform(g, 2, mask=attention * 2)
    with pytest.raises(ValueError, match="mask must be boolean or integer 0/1 .*got dtype float64"):
        pkpo.transform(g, 2, mask=attention.astype(float))


def test_torch_attention_mask_and_0d_tensor_k():
    torch = pytest.importorskip("torch")
    g = torch.tensor([[0.2, 0.9, 0.4, 7.0]])
    attention = torch.tensor([[1, 1, 1, 0]])
    expected = pkpo.transform(g, 2, mask=attention.bool())
    assert torch.equal(pkpo.transform(g, torch.tensor(2), mask=attention), expected)
    assert pkpo.maxg_at_k(g, np.int64(2)).item() == pytest.approx(pkpo.maxg_at_k(g, 2).item())
    for bad in (torch.tensor(2.0), torch.tensor(True), torch.tensor([2, 3]), np.array([2])):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            pkpo.transform(g, bad)


def test_a_ragged_list_is_explained():
    with pytest.raises(ValueError, match="rewards is a ragged nested list .* mask= .* transform_grouped"):
        pkpo.transform([[1.0, 2.0], [3.0]], 1)


def test_pass_at_k_from_counts_returns_a_float_for_scalars():
    value = pkpo.pass_at_k_from_counts(4, 1, 2)
    assert type(value) is float and value == 0.5
    assert type(pkpo.pass_at_k_from_counts(5000, 3, 2)) is float
    assert pkpo.pass_at_k_from_counts([4, 4], [1, 0], 2).tolist() == [0.5, 0.0]


@pytest.mark.parametrize("n", [2049, 65536, 10**6])
def test_pass_at_k_from_counts_precision_beyond_exact_sizes(n):
    """The docstring's bound: relative error below 1e-12 against exact rationals, also where pass@k
    is tiny (c = k = 1) and where the product form hands over to the log-factorial table."""
    worst = 0.0
    cases = [(1, 1), (1, 2), (3, 2), (min(4096, n - 2), 2), (4097, min(4097, n - 4097)), (n // 3, 7), (5, n - 5)]
    for c, k in cases:
        if k < 1:
            continue
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        got = pkpo.pass_at_k_from_counts(n, c, k)
        worst = max(worst, float(abs(Fraction(got) - exact) / exact))
    got = pkpo.pass_at_k_from_counts(n, 1, n // 2)  # c = 1: exactly k / n
    worst = max(worst, float(abs(Fraction(got) - Fraction(n // 2, n)) / Fraction(n // 2, n)))
    assert worst < 1e-12


def test_centered_sums_to_zero_up_to_rounding(rng):
    g = rng.random((2000, 16))
    sums = np.abs(pkpo.transform(g, 4, baseline="centered").sum(-1))
    assert sums.max() < 16 * np.finfo(np.float64).eps  # not exactly 0 in floating point; docs say so


def test_loo_minus_one_sums_to_zero_at_k_1(rng):
    # the documented sum k (rho_k - rho_{k-1}) is for k >= 2; at k = 1 it is leave-one-out centring
    g = rng.random((50, 8))
    assert np.abs(pkpo.transform(g, 1).sum(-1)).max() < 1e-15
    s = pkpo.transform(g, 3).sum(-1)
    assert np.allclose(s, 3 * (pkpo.maxg_at_k(g, 3) - pkpo.maxg_at_k(g, 2)), atol=1e-14)


# --- JAX jit and torch autograd, as the docs describe them --------------------------------------


@pytest.mark.slow
def test_jax_jit_needs_validate_false_and_says_so():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    g = jnp.asarray(np.random.default_rng(0).random((3, 5)), dtype=jnp.float32)
    with pytest.raises(ValueError, match="validate=True reads rewards .* inside jax.jit; pass validate=False"):
        jax.jit(lambda x: pkpo.transform(x, 2))(g)
    jitted = jax.jit(lambda x: pkpo.transform(x, 2, validate=False))(g)
    assert np.allclose(np.asarray(jitted), np.asarray(pkpo.transform(g, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="k must be a concrete integer, not a traced value: .* static"):
        jax.jit(lambda x, k: pkpo.transform(x, k, validate=False))(g, 2)


def test_torch_outputs_are_differentiable_with_correct_gradients():
    torch = pytest.importorskip("torch")
    g = torch.tensor([[0.3, 0.9, 0.1, 0.5, 0.7]], dtype=torch.float64, requires_grad=True)
    for baseline in pkpo.BASELINES:
        out = pkpo.transform(g, 2, baseline=baseline)
        assert out.requires_grad  # attached to the graph, as documented
        assert torch.autograd.gradcheck(lambda x: pkpo.transform(x, 2, baseline=baseline), (g,))
    assert not pkpo.transform(g.detach(), 2).requires_grad
