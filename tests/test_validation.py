"""Every bad input of DESIGN.md raises ValueError with a message naming the problem (and the
group)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import pkpo

G = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, 0.0, 1.0, 0.4]])
NAN_ROW1 = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, np.nan, 1.0, 0.4]])
INF_ROW0 = np.array([[0.1, np.inf, 0.2, 0.9], [0.3, 0.0, 1.0, 0.4]])
MASK_SMALL_ROW1 = np.array([[True, True, True, True], [True, False, False, False]])

# (id, call, pattern the message must match)
BAD_INPUTS = [
    # rewards values
    ("nan", lambda: pkpo.transform(NAN_ROW1, 2), r"NaN or inf in group 1\b"),
    ("inf", lambda: pkpo.transform(INF_ROW0, 2), r"NaN or inf in group 0\b"),
    ("nan-maxg", lambda: pkpo.maxg_at_k(NAN_ROW1, 2), r"rewards contain NaN or inf in group 1"),
    (
        "nan-unmasked",
        lambda: pkpo.transform(NAN_ROW1, 1, mask=np.ones((2, 4), bool)),
        r"NaN or inf in group 1",
    ),
    (
        "nan-grouped",
        lambda: pkpo.transform_grouped(np.array([0.1, np.nan, 0.3, 0.2]), ["a", "b", "a", "b"], 1),
        r"NaN or inf in group 'b'",
    ),
    # k
    ("k-zero", lambda: pkpo.transform(G, 0), r"k must be >= 1; got k=0"),
    ("k-negative", lambda: pkpo.maxg_at_k(G, -2), r"k must be >= 1; got k=-2"),
    (
        "k-float",
        lambda: pkpo.transform(G, 2.0),
        r"k must be a positive integer; got k=2\.0 of type float",
    ),
    (
        "k-str",
        lambda: pkpo.transform(G, "2"),
        r"k must be a positive integer; got k='2' of type str",
    ),
    ("k-none", lambda: pkpo.pass_at_k(G > 0.3, None), r"k must be a positive integer; got k=None"),
    (
        "k-bool",
        lambda: pkpo.transform(G, True),
        r"k must be a positive integer; got k=True of type bool",
    ),
    ("k-numpy-float", lambda: pkpo.transform(G, np.float64(2)), r"k must be a positive integer"),
    (
        "k-above-n",
        lambda: pkpo.transform(G, 5),
        r"every group has n=4 samples but k=5; k <= n is required",
    ),
    ("k-above-n-maxg", lambda: pkpo.maxg_at_k(G, 5), r"n=4 samples but k=5; k <= n"),
    ("k-above-n-pass", lambda: pkpo.pass_at_k(G > 0.3, 5), r"n=4 samples but k=5; k <= n"),
    # group size for the baseline
    (
        "loo-needs-k+1",
        lambda: pkpo.transform(G, 4, "loo"),
        r"n=4 samples but k=4; n >= k \+ 1 with baseline='loo'",
    ),
    (
        "centered-needs-k+1",
        lambda: pkpo.transform(G, 4, "centered"),
        r"n=4 samples but k=4; n >= k \+ 1 with baseline='centered'",
    ),
    (
        "loo-1-k1-needs-2",
        lambda: pkpo.transform(np.array([[0.5]]), 1),
        r"n=1 samples but k=1; n >= 2 with baseline='loo_minus_one' at k = 1",
    ),
    (
        "masked-group-too-small",
        lambda: pkpo.transform(G, 2, mask=MASK_SMALL_ROW1),
        r"group 1 has n=1 samples but k=2",
    ),
    (
        "masked-group-loo",
        lambda: pkpo.transform(G, 1, "loo", mask=MASK_SMALL_ROW1),
        r"group 1 has n=1 samples but k=1; n >= k \+ 1 with baseline='loo'",
    ),
    (
        "grouped-too-small",
        lambda: pkpo.transform_grouped(np.array([0.1, 0.2, 0.3]), ["a", "b", "a"], 2),
        r"group 'b' has n=1 samples but k=2",
    ),
    (
        "grouped-int-ids",
        lambda: pkpo.transform_grouped(np.array([0.1, 0.2, 0.3]), [7, 9, 7], 2, "centered"),
        r"group 7 has n=2 samples but k=2; n >= k \+ 1 with baseline='centered'",
    ),
    # baseline
    (
        "unknown-baseline",
        lambda: pkpo.transform(G, 2, "rloo"),
        r"unknown baseline 'rloo'; expected one of none, loo, loo_minus_one, centered",
    ),
    ("baseline-none-object", lambda: pkpo.transform(G, 2, None), r"unknown baseline None"),
    (
        "grouped-unknown-baseline",
        lambda: pkpo.transform_grouped(G[0], [0, 0, 1, 1], 1, "LOO"),
        r"unknown baseline 'LOO'",
    ),
    # mask
    (
        "mask-shape",
        lambda: pkpo.transform(G, 2, mask=np.ones((2, 3), bool)),
        r"mask shape \(2, 3\) must equal rewards shape \(2, 4\)",
    ),
    (
        "mask-dtype",
        lambda: pkpo.transform(G, 2, mask=np.ones((2, 4), float)),
        r"mask must be boolean or integer 0/1 \(like attention_mask\); got dtype float64",
    ),
    (
        "mask-int-values",
        lambda: pkpo.transform(G, 2, mask=np.full((2, 4), 3)),
        r"an integer mask must hold only 0 and 1; got \[3\]",
    ),
    (
        "mask-float",
        lambda: pkpo.maxg_at_k(G, 2, mask=np.ones((2, 4))),
        r"mask must be boolean or integer 0/1 \(like attention_mask\); got dtype float64",
    ),
    # arrays
    ("scalar", lambda: pkpo.transform(np.float64(0.5), 1), r"rewards must have at least one axis"),
    (
        "empty",
        lambda: pkpo.transform(np.zeros((3, 0)), 1),
        r"rewards has an empty sample axis \(shape \(3, 0\)\)",
    ),
    (
        "strings",
        lambda: pkpo.transform(np.array([["a", "b"]]), 1),
        r"rewards must be a real or boolean array",
    ),
    (
        "complex",
        lambda: pkpo.maxg_at_k(np.array([[1j, 2]]), 1),
        r"rewards must be a real or boolean array; got dtype complex",
    ),
    (
        "grouped-2d",
        lambda: pkpo.transform_grouped(G, [0, 1], 1),
        r"rewards must be 1-D \[N\] for transform_grouped; got shape \(2, 4\)",
    ),
    (
        "grouped-ids-length",
        lambda: pkpo.transform_grouped(G[0], [0, 1, 0], 1),
        r"group_ids must be 1-D with one id per reward \(4\); got shape \(3,\)",
    ),
    (
        "grouped-ids-mixed",
        lambda: pkpo.transform_grouped(G[0], np.array([0, "a", 0, "a"], dtype=object), 1),
        r"group_ids must be mutually comparable",
    ),
    # binary inputs
    (
        "correct-not-binary",
        lambda: pkpo.pass_at_k(np.array([[0, 1, 1], [0, 2, 1]]), 2),
        r"correct must hold only 0/1 or booleans; group 1 has other values",
    ),
    (
        "correct-fraction",
        lambda: pkpo.pass_at_k(np.array([[0.0, 0.5, 1.0]]), 1),
        r"correct must hold only 0/1 or booleans; group 0",
    ),
    (
        "correct-nan",
        lambda: pkpo.pass_at_k(np.array([[0.0, np.nan]]), 1),
        r"correct must hold only 0/1",
    ),
    ("correct-k-above-n", lambda: pkpo.pass_at_k(np.array([[1, 0]]), 3), r"n=2 samples but k=3"),
    # counts
    (
        "counts-c-above-n",
        lambda: pkpo.pass_at_k_from_counts(5, 6, 2),
        r"every count c must satisfy 0 <= c <= n; got n=5, c=6",
    ),
    (
        "counts-c-negative",
        lambda: pkpo.pass_at_k_from_counts([5, 5], [1, -1], 2),
        r"0 <= c <= n; got n=\[5, 5\], c=\[1, -1\]",
    ),
    (
        "counts-n-below-k",
        lambda: pkpo.pass_at_k_from_counts([5, 3], [1, 1], 4),
        r"group 1 has n=3 samples but k=4; k <= n is required",
    ),
    (
        "counts-n-fraction",
        lambda: pkpo.pass_at_k_from_counts(4.5, 1, 2),
        r"n must hold non-negative integers; got 4\.5",
    ),
    (
        "counts-c-bool",
        lambda: pkpo.pass_at_k_from_counts(4, True, 2),
        r"c must hold non-negative integers; got True",
    ),
    (
        "counts-c-nan",
        lambda: pkpo.pass_at_k_from_counts(4, np.nan, 2),
        r"c must hold non-negative integers; got nan",
    ),
    ("counts-k-zero", lambda: pkpo.pass_at_k_from_counts(4, 1, 0), r"k must be >= 1; got k=0"),
    (
        "counts-k-float",
        lambda: pkpo.pass_at_k_from_counts(4, 1, 1.5),
        r"k must be a positive integer; got k=1\.5",
    ),
]


@pytest.mark.parametrize(
    "call, pattern", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_raises_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_table_covers_every_public_function():
    names = {"transform", "transform_grouped", "maxg_at_k", "pass_at_k", "pass_at_k_from_counts"}
    # co_names of a lambda lists the attributes it touches
    touched = set().union(*(set(case[1].__code__.co_names) for case in BAD_INPUTS))
    assert names <= touched, names - touched


def test_nothing_is_clamped_k_equal_n_is_fine():
    """The edge of every rule is accepted (k = n without a baseline needing n >= k + 1)."""
    pkpo.transform(G, 4)
    pkpo.transform(G, 4, "none")
    pkpo.transform(G, 3, "loo")
    pkpo.pass_at_k_from_counts(4, 4, 4)
    pkpo.transform(np.array([[0.5, 0.1]]), 1)


def test_group_size_rule():
    """DESIGN.md: n >= k; n >= k + 1 for loo and centered; n >= 2 for loo_minus_one at k = 1."""
    assert pkpo.BASELINES == ("none", "loo", "loo_minus_one", "centered")
    assert pkpo.SCALES == ("none", "n_over_k", "mean_abs")
    for k, sizes in {1: (1, 2, 2, 2), 3: (3, 4, 3, 4)}.items():
        assert tuple(pkpo.min_group_size(k, baseline) for baseline in pkpo.BASELINES) == sizes
        for baseline, n in zip(pkpo.BASELINES, sizes):
            pkpo.transform(np.arange(n, dtype=float), k, baseline)  # the edge is accepted
            if n > 1:
                with pytest.raises(ValueError, match=f"has n={n - 1} samples but k={k}"):
                    pkpo.transform(np.arange(n - 1, dtype=float), k, baseline)
    with pytest.raises(ValueError, match="unknown baseline 'loo1'"):
        pkpo.min_group_size(2, "loo1")


def test_validate_false_skips_value_checks():
    """validate=False skips the checks that read values (NaN, 0/1): they are the caller's duty."""
    out = pkpo.transform(NAN_ROW1, 2, validate=False)
    assert np.isfinite(out[0]).all()  # the clean group is unaffected
    with pytest.raises(ValueError, match=re.escape("k <= n")):
        pkpo.transform(G, 5, validate=False)  # static checks always run


class TestTorch:
    torch = pytest.importorskip("torch")

    def test_nan_names_group(self):
        with pytest.raises(ValueError, match=r"NaN or inf in group 1"):
            pkpo.transform(self.torch.tensor(NAN_ROW1), 2)

    def test_mask_of_other_kind(self):
        with pytest.raises(
            ValueError, match=r"mask must be the same kind of array as rewards \(torch\); got numpy"
        ):
            pkpo.transform(self.torch.tensor(G), 2, mask=np.ones((2, 4), bool))

    def test_mask_dtype(self):
        with pytest.raises(
            ValueError,
            match=r"mask must be boolean or integer 0/1 \(like attention_mask\); "
            r"got dtype torch.float32",
        ):
            pkpo.transform(self.torch.tensor(G), 2, mask=self.torch.ones(2, 4))

    def test_masked_group_too_small(self):
        mask = self.torch.tensor(MASK_SMALL_ROW1)
        with pytest.raises(ValueError, match=r"group 1 has n=1 samples but k=2"):
            pkpo.transform(self.torch.tensor(G), 2, mask=mask)

    def test_not_binary(self):
        with pytest.raises(ValueError, match=r"correct must hold only 0/1 or booleans; group 0"):
            pkpo.pass_at_k(self.torch.tensor([[0, 3]]), 1)


# --- one group-size check, one typed error ------------------------------------------------------


def test_group_size_error_carries_the_group_and_the_rule():
    with pytest.raises(pkpo.GroupSizeError) as caught:
        pkpo.transform(np.zeros((3, 4)), 4, "loo")
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.group, error.n, error.need, error.k, error.baseline) == (None, 4, 5, 4, "loo")

    mask = np.ones((3, 4), dtype=bool)
    mask[2, 1:] = False
    with pytest.raises(pkpo.GroupSizeError, match="group 2 has n=1 samples but k=1") as caught:
        pkpo.transform(np.zeros((3, 4)), 1, mask=mask)
    assert (caught.value.group, caught.value.n, caught.value.need) == (2, 1, 2)
    assert caught.value.baseline == pkpo.DEFAULT_BASELINE

    with pytest.raises(pkpo.GroupSizeError, match="group 'b' has n=2") as caught:
        pkpo.transform_grouped(np.zeros(5), ["a", "b", "a", "b", "a"], 3)
    assert (caught.value.group, caught.value.n, caught.value.need, caught.value.k) == ("b", 2, 3, 3)

    with pytest.raises(pkpo.GroupSizeError) as caught:
        pkpo.pass_all_k_from_counts([8, 3], [1, 1], 4)
    assert (caught.value.group, caught.value.n, caught.value.baseline) == (1, 3, "none")


def test_default_baseline_is_the_one_default():
    import inspect

    for function in (pkpo.transform, pkpo.transform_grouped):
        assert inspect.signature(function).parameters["baseline"].default is pkpo.DEFAULT_BASELINE
    assert pkpo.DEFAULT_BASELINE == "loo_minus_one" and pkpo.DEFAULT_BASELINE in pkpo.BASELINES


@pytest.mark.parametrize(
    "call",
    [
        lambda: pkpo.transform(G, 2, scale="mean_abs"),
        lambda: pkpo.transform(G, 2, mask=np.ones(G.shape, bool), return_info=True),
        lambda: pkpo.transform_grouped(
            G.reshape(-1), np.repeat(np.arange(G.shape[0]), G.shape[1]), 2
        ),
        lambda: pkpo.maxg_at_k(G, 2),
        lambda: pkpo.pass_all_k(G > 0, 2),
    ],
)
def test_public_functions_validate_once(call, monkeypatch):
    """Each check runs once per public call: internal callers take the unchecked paths."""
    from pkpo import _validation

    counts = {}
    for name in ("check_k", "check_baseline", "check_scale", "check_group_sizes", "check_mask"):
        original = getattr(_validation, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(_validation, name, counted)
    call()
    assert counts and max(counts.values()) == 1, counts


def test_reports_do_not_revalidate_per_k(monkeypatch):
    from pkpo import _validation, metrics

    calls = []
    original = _validation.check_group_sizes
    monkeypatch.setattr(
        _validation, "check_group_sizes", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    metrics.maxg_at_k_report([[0.1, 0.5, 0.2], [0.3, 0.3, 0.9]], ks=[1, 2, 3])
    metrics.pass_at_k_report([[1, 0, 0], [1, 1, 0]], ks=[1, 2, 3])
    assert calls == []  # the reports check their rows once themselves
