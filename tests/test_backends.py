"""numpy, torch and JAX give the same numbers; kind, dtype and device follow the input; the
transform runs under torch.compile and jax.jit; float32 stays accurate at n = 65,536."""

from __future__ import annotations

import numpy as np
import pytest

import pkpo

torch = pytest.importorskip("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def jax_modules():
    jax = pytest.importorskip("jax")
    return jax, jax.numpy


@pytest.fixture
def batch(rng):
    return np.concatenate([rng.normal(size=(5, 12)), rng.integers(0, 3, size=(3, 12)) * 0.5])


@pytest.fixture
def ragged_mask(rng):
    mask = rng.random((8, 12)) < 0.75
    mask[:, :6] = True  # every group has n >= 6
    return mask


def reference(batch, k, baseline, mask=None):
    return pkpo.transform(batch, k, baseline, mask=mask)


# --- numpy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_kind_and_dtype(batch, dtype):
    out = pkpo.transform(batch.astype(dtype), 3)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    assert pkpo.maxg_at_k(batch.astype(dtype), 3).dtype == dtype
    np.testing.assert_allclose(
        out,
        reference(batch.astype(dtype).astype(np.float64), 3, "loo_minus_one"),
        rtol=0,
        atol=1e-6 if dtype == np.float32 else 0,
    )


def test_lists_bool_and_int_inputs_give_float64():
    assert pkpo.transform([[0.0, 1.0, 0.5]], 2).dtype == np.float64
    for correct in (np.array([[True, False, True]]), np.array([[1, 0, 1]])):
        assert pkpo.transform(correct, 2).dtype == np.float64
        assert pkpo.pass_at_k(correct, 2).dtype == np.float64
    np.testing.assert_array_equal(
        pkpo.transform([[1, 0, 1]], 2), pkpo.transform([[1.0, 0.0, 1.0]], 2)
    )


# --- torch --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_torch_matches_numpy(batch, ragged_mask, device, dtype, baseline):
    dtype = getattr(torch, dtype)
    x = torch.tensor(batch, dtype=dtype, device=device)
    exact = batch.astype(np.float32).astype(np.float64) if dtype == torch.float32 else batch
    tol = 1e-6 if dtype == torch.float32 else 1e-15
    for mask in (None, ragged_mask):
        out = pkpo.transform(
            x, 4, baseline, mask=None if mask is None else torch.tensor(mask, device=device)
        )
        assert isinstance(out, torch.Tensor)
        assert out.dtype == dtype and out.device == x.device and out.shape == x.shape
        np.testing.assert_allclose(
            out.cpu().numpy(), reference(exact, 4, baseline, mask), rtol=0, atol=tol
        )
    estimate = pkpo.maxg_at_k(x, 4)
    assert (
        estimate.dtype == dtype and estimate.device == x.device and estimate.shape == x.shape[:-1]
    )
    np.testing.assert_allclose(estimate.cpu().numpy(), pkpo.maxg_at_k(exact, 4), rtol=0, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_bool_and_int_input(device):
    correct = torch.tensor([[True, False, True, False]], device=device)
    out = pkpo.transform(correct, 2)
    assert out.dtype == torch.get_default_dtype() and out.device == correct.device
    np.testing.assert_allclose(
        out.cpu().numpy(), pkpo.transform(correct.cpu().numpy(), 2), atol=1e-7
    )
    rate = pkpo.pass_at_k(correct.long(), 2)
    assert rate.dtype == torch.get_default_dtype()
    assert float(rate) == pytest.approx(5 / 6)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_transform_grouped(device, rng):
    rewards = rng.normal(size=20)
    ids = rng.integers(0, 4, size=20)
    x = torch.tensor(rewards, dtype=torch.float64, device=device)
    out = pkpo.transform_grouped(x, torch.tensor(ids, device=device), 2)
    assert out.device == x.device and out.dtype == torch.float64
    np.testing.assert_allclose(
        out.cpu().numpy(), pkpo.transform_grouped(rewards, ids, 2), atol=1e-15
    )


def test_torch_validate_false_gives_same_numbers(batch):
    x = torch.tensor(batch)
    torch.testing.assert_close(
        pkpo.transform(x, 3, validate=False), pkpo.transform(x, 3), rtol=0, atol=0
    )


@pytest.mark.slow
def test_torch_compile(batch):
    """The transform runs under torch.compile (default inductor backend; the host-side weight cache
    is kept out of the graph), and a second batch of the same shape reuses the compiled code."""
    compiled = torch.compile(lambda x: pkpo.transform(x, 4, "centered", validate=False) * 2.0)
    x = torch.tensor(batch, dtype=torch.float32)
    torch.testing.assert_close(
        compiled(x), 2.0 * pkpo.transform(x, 4, "centered"), rtol=1e-6, atol=1e-7
    )
    x2 = torch.tensor(batch[::-1].copy(), dtype=torch.float32)
    torch.testing.assert_close(
        compiled(x2), 2.0 * pkpo.transform(x2, 4, "centered"), rtol=1e-6, atol=1e-7
    )


@pytest.mark.slow
def test_torch_compile_fullgraph_validate_false(batch, ragged_mask):
    """With validate=False nothing breaks the graph (fullgraph=True), for a new shape too (dynamic
    shapes), dense or ragged: the rank weights are then computed in the graph from lgamma."""
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x, mask: pkpo.transform(x, 3, mask=mask, validate=False), fullgraph=True
    )
    for x in (torch.tensor(batch), torch.tensor(batch[:, :10]), torch.tensor(batch[:6, :11])):
        torch.testing.assert_close(compiled(x, None), pkpo.transform(x, 3), rtol=1e-12, atol=1e-13)
    x, mask = torch.tensor(batch), torch.tensor(ragged_mask)
    torch.testing.assert_close(
        compiled(x, mask), pkpo.transform(x, 3, mask=mask), rtol=1e-12, atol=1e-13
    )
    estimates = torch.compile(lambda x: pkpo.maxg_at_k(x, 5, validate=False), fullgraph=True)
    torch.testing.assert_close(estimates(x), pkpo.maxg_at_k(x, 5), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_pass_all_k_matches_numpy(device, rng):
    f = rng.integers(0, 2, size=(9, 12))
    mask = rng.random((9, 12)) < 0.8
    mask[:, :5] = True
    for k in (1, 3, 5):
        expected = pkpo.pass_all_k(f, k, mask=mask)
        for dtype in (torch.bool, torch.int64, torch.float64):
            got = pkpo.pass_all_k(
                torch.tensor(f, dtype=dtype, device=device),
                k,
                mask=torch.tensor(mask, device=device),
            )
            assert got.device.type == device
            assert got.dtype == (
                torch.float64 if dtype == torch.float64 else torch.get_default_dtype()
            )
            rtol = 1e-13 if got.dtype == torch.float64 else 1e-7  # bool/int: torch's default float
            np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_function_accepts_half_precision_tensors(dtype, batch):
    """bf16/fp16 in, the same dtype out, computed wider: each result is the float64 result rounded
    once to the half dtype (the input itself being exactly representable in float64)."""
    from pkpo import metrics
    from pkpo.transforms import scale_advantages

    x = torch.tensor(batch).to(dtype)
    wide = x.double()
    f = (x > 0).to(dtype)
    ids = np.repeat(np.arange(x.shape[0]), x.shape[1])
    pairs = [
        (pkpo.transform(x, 3), pkpo.transform(wide, 3)),
        (
            pkpo.transform(x, 3, "loo", scale="mean_abs"),
            pkpo.transform(wide, 3, "loo", scale="mean_abs"),
        ),
        (
            pkpo.transform_grouped(x.reshape(-1), ids, 2),
            pkpo.transform_grouped(wide.reshape(-1), ids, 2),
        ),
        (pkpo.maxg_at_k(x, 4), pkpo.maxg_at_k(wide, 4)),
        (pkpo.pass_at_k(f, 4), pkpo.pass_at_k(f.double(), 4)),
        (pkpo.pass_all_k(f, 2), pkpo.pass_all_k(f.double(), 2)),
        (scale_advantages(x, 2, "mean_abs"), scale_advantages(wide, 2, "mean_abs")),
    ]
    for got, expected in pairs:
        assert got.dtype == dtype
        torch.testing.assert_close(got, expected.to(dtype), rtol=0, atol=0)
    for report, function in ((metrics.pass_at_k_report, f), (metrics.maxg_at_k_report, x)):
        assert report(function, [1, 4])[4].estimate == report(function.double(), [1, 4])[4].estimate
    assert metrics.cover(list(f), 0.5) == metrics.cover(f.double().numpy(), 0.5)


@pytest.mark.parametrize(
    "n, k, documented", [(256, 4, 4.6), (256, 8, 21.8), (65_536, 4, 21.0), (65_536, 8, 45.9)]
)
def test_float16_flushes_as_documented(n, k, documented):
    """The numbers in pkpo._backend's docstring: the share (%) of nonzero advantages that float16
    returns as 0 (uniform rewards, default baseline, scale="none", 2^20 rewards, seed 0)."""
    rewards = np.random.default_rng(0).random((2**20 // n, n)).astype(np.float16)
    exact = pkpo.transform(rewards.astype(np.float64), k)
    half = pkpo.transform(torch.from_numpy(rewards), k).numpy()
    nonzero = exact != 0
    assert round(100 * float(np.mean(half[nonzero] == 0)), 1) == documented


# --- JAX ----------------------------------------------------------------------------------------


# Eager JAX compiles every primitive for every new shape and dtype (seconds per first call on
# these CPUs), so most JAX checks run one jitted function per case.


@pytest.mark.slow
def test_jax_eager_kind_and_dtype(batch, ragged_mask):
    jax, jnp = jax_modules()
    x = jnp.asarray(batch, dtype=jnp.float32)
    exact = batch.astype(np.float32).astype(np.float64)
    for mask in (None, ragged_mask):
        out = pkpo.transform(x, 4, "centered", mask=None if mask is None else jnp.asarray(mask))
        assert isinstance(out, jax.Array) and out.dtype == jnp.float32 and out.shape == x.shape
        np.testing.assert_allclose(
            np.asarray(out), reference(exact, 4, "centered", mask), atol=2e-6
        )
    estimate = pkpo.maxg_at_k(x, 4)
    assert isinstance(estimate, jax.Array) and estimate.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(estimate), pkpo.maxg_at_k(exact, 4), atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_jax_jit_validate_false(batch, ragged_mask, x64):
    """Inside jax.jit with validate=False, dense and ragged, every baseline, float32 and (x64)
    float64."""
    jax, jnp = jax_modules()
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        exact = batch if x64 else batch.astype(np.float32).astype(np.float64)
        tol = 1e-15 if x64 else 2e-6

        traces = []

        @jax.jit
        def everything(x, m):
            traces.append(x.shape)  # runs only while jax traces the function
            dense = [pkpo.transform(x, 4, b, validate=False) for b in pkpo.BASELINES]
            ragged = [pkpo.transform(x, 4, b, mask=m, validate=False) for b in pkpo.BASELINES]
            return dense, ragged, pkpo.maxg_at_k(x, 4, validate=False)

        x = jnp.asarray(batch, dtype=dtype)
        dense, ragged, estimate = everything(x, jnp.asarray(ragged_mask))
        for baseline, out_dense, out_ragged in zip(pkpo.BASELINES, dense, ragged):
            assert out_dense.dtype == dtype and out_ragged.dtype == dtype
            np.testing.assert_allclose(
                np.asarray(out_dense), reference(exact, 4, baseline), atol=tol
            )
            np.testing.assert_allclose(
                np.asarray(out_ragged), reference(exact, 4, baseline, ragged_mask), atol=tol
            )
        np.testing.assert_allclose(np.asarray(estimate), pkpo.maxg_at_k(exact, 4), atol=tol)
        # a second batch of the same shape reuses the compiled function
        everything(x[::-1], jnp.asarray(ragged_mask))
        assert len(traces) == 1


@pytest.mark.slow
def test_jax_transform_grouped_and_bool(rng):
    jax, jnp = jax_modules()
    rewards = rng.normal(size=15).astype(np.float32)
    ids = rng.integers(0, 3, size=15)
    out = pkpo.transform_grouped(jnp.asarray(rewards), ids, 2)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32
    expected = pkpo.transform_grouped(rewards.astype(np.float64), ids, 2)
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-6)
    correct = jnp.asarray([[True, False, True, False]])
    assert pkpo.transform(correct, 2).dtype == jnp.float32
    assert float(pkpo.pass_at_k(correct, 2)[0]) == pytest.approx(5 / 6)


# --- 6. float32 stability at n = 65,536
# ------------------------------------------------------------


N_LARGE = 65_536
LARGE_KS = (1, 16, N_LARGE // 2, N_LARGE - 1, N_LARGE)


@pytest.fixture(scope="module")
def large_batch():
    """Two groups of 65,536 rewards, exactly representable in float32 (so only the algorithm's
    own float32 rounding is measured, not the rounding of the inputs)."""
    rng = np.random.default_rng(65536)
    g = np.stack([rng.random(N_LARGE), np.round(rng.normal(size=N_LARGE), 2)])
    return g.astype(np.float32).astype(np.float64)


def relative_error(got, ref):
    """max |got - ref| / max |ref|: the error relative to the size of the group's advantages."""
    got = np.asarray(got, dtype=np.float64)
    return np.abs(got - ref).max() / np.abs(ref).max()


@pytest.mark.slow
def test_float32_large_n(large_batch):
    """float32 against float64 at n = 65,536, k in {1, 16, n/2, n-1, n}: max|diff| / max|ref| <=
    1e-4.

    JAX without x64 does every step in float32 (dense weights are computed on the host in float64
    first; ragged weights on the device from the split log-factorial table): the strict case.
    numpy and torch CPU sort in float32 and scan in float64 (checked at k = n/2).
    """
    _, jnp = jax_modules()
    mask = np.ones(large_batch.shape, dtype=bool)
    mask[1, -3:] = False  # ragged: the second group has n - 3 samples
    x32 = large_batch.astype(np.float32)
    x_jax, mask_jax = jnp.asarray(x32), jnp.asarray(mask)
    worst = {}
    for baseline in pkpo.BASELINES:
        for k in LARGE_KS:
            if baseline in ("loo", "centered") and k == N_LARGE:
                continue
            got = pkpo.transform(x_jax, k, baseline)
            worst[baseline, k, "dense"] = relative_error(
                got, pkpo.transform(large_batch, k, baseline)
            )
            k = min(k, N_LARGE - 3 - (baseline in ("loo", "centered")))
            got = pkpo.transform(x_jax, k, baseline, mask=mask_jax)
            worst[baseline, k, "ragged"] = relative_error(
                got, pkpo.transform(large_batch, k, baseline, mask=mask)
            )
        ref = pkpo.transform(large_batch, N_LARGE // 2, baseline)
        worst[baseline, "numpy"] = relative_error(pkpo.transform(x32, N_LARGE // 2, baseline), ref)
        worst[baseline, "torch"] = relative_error(
            pkpo.transform(torch.tensor(x32), N_LARGE // 2, baseline), ref
        )
    assert max(worst.values()) <= 1e-4, {
        key: f"{value:.1e}" for key, value in worst.items() if value > 1e-4
    }


def test_float32_large_n_estimates(large_batch):
    _, jnp = jax_modules()
    for k in LARGE_KS:
        ref = pkpo.maxg_at_k(large_batch, k)
        for x in (large_batch.astype(np.float32), jnp.asarray(large_batch, dtype=jnp.float32)):
            got = np.asarray(pkpo.maxg_at_k(x, k), dtype=np.float64)
            assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


def test_ragged_float64_equals_dense_at_large_n(large_batch):
    """The ragged (log-space, on-device) weights give the dense (host) numbers at n = 65,536."""
    mask = torch.ones(large_batch.shape, dtype=torch.bool)
    for k in (16, N_LARGE // 2):
        dense = pkpo.transform(large_batch, k, "centered")
        ragged = pkpo.transform(torch.tensor(large_batch), k, "centered", mask=mask).numpy()
        assert relative_error(ragged, dense) <= 1e-12


def test_torch_meta_tensors_are_refused_with_a_value_error():
    torch = pytest.importorskip("torch")
    meta = torch.zeros(2, 4, device="meta")
    for call in (
        lambda: pkpo.transform(meta, 2),
        lambda: pkpo.pass_at_k(meta, 2),
        lambda: pkpo.maxg_at_k(meta, 2),
        lambda: pkpo.advantages.compute("grpo", meta),
    ):
        with pytest.raises(ValueError, match="meta tensor"):
            call()
