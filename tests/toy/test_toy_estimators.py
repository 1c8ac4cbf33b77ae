"""Figure-4 estimators: definitions, unbiasedness and the variance ordering."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the toy extra: make test installs it")
pytest.importorskip("tqdm", reason="the toy extra: make test installs it")

from pkpo.toy.estimators import ESTIMATORS, is_defined, transformed_rewards  # noqa: E402
from pkpo.toy.fig4_variance import variance_at_n  # noqa: E402


def partition_by_loops(name, g, k):
    """The partitioned estimators written out block by block (Fig. 4 caption, paper.md §3)."""
    n = len(g)
    blocks = [list(range(b * k, (b + 1) * k)) for b in range(n // k)]
    maxima = [max(g[i] for i in block) for block in blocks]
    out = np.zeros(n)
    for b, block in enumerate(blocks):
        for i in block:
            if name == "naive_partitioned":
                value = maxima[b]
            elif name == "naive_partitioned_baselined":
                value = maxima[b] - np.mean([m for c, m in enumerate(maxima) if c != b])
            else:
                value = maxima[b] - max(g[j] for j in block if j != i)
            out[i] = value / len(blocks)
    return out


@pytest.mark.parametrize(
    "name", ["naive_partitioned", "naive_partitioned_baselined", "loo_minus_one_partitioned"]
)
@pytest.mark.parametrize("n,k", [(8, 2), (8, 4), (12, 3)])
def test_partitioned_estimators_match_their_definitions(name, n, k):
    rng = np.random.default_rng(n * 10 + k)
    g = rng.uniform(0, 1, size=n)
    np.testing.assert_allclose(
        transformed_rewards(name, g, k), partition_by_loops(name, g, k), atol=1e-12
    )


def test_definedness_follows_the_group_size_rules():
    assert not is_defined("s_loo", 4, 4) and is_defined("s_loo", 5, 4)
    assert not is_defined("centered", 16, 16) and is_defined("s_loo_minus_one", 16, 16)
    assert is_defined("s_loo_minus_one", 16, 1) and not is_defined(
        "loo_minus_one_partitioned", 16, 1
    )
    assert not is_defined("naive_partitioned", 10, 4) and not is_defined(
        "naive_partitioned_baselined", 4, 4
    )
    with pytest.raises(ValueError, match="unknown estimator"):
        is_defined("rloo", 8, 2)
    with pytest.raises(ValueError, match="not defined for n=4, k=4"):
        transformed_rewards("s_loo", np.zeros(4), 4)


@pytest.fixture(scope="module")
def study():
    """k = 4 at theta = 1 as in Figure 4, 6,000 estimates per n."""
    return {n: variance_at_n(n, 4, 1.0, 6000, np.random.default_rng(100 + n)) for n in (8, 16, 32)}


def test_every_estimator_is_unbiased_within_four_standard_errors(study):
    checked = 0
    for result in study.values():
        for name in ESTIMATORS:
            assert name in result
            assert abs(result[name]["mean"] - result["exact"]) < 4 * result[name]["standard_error"]
            checked += 1
    assert checked == 21


def test_loo_minus_one_has_the_lowest_variance(study):
    # the paper's Figure-4 claim, and what paper.md §2.2 found for the centred variant on this toy
    for result in study.values():
        var = {name: result[name]["variance"] for name in ESTIMATORS}
        assert var["s_loo_minus_one"] < var["s_loo"] < var["s"]
        assert min(var, key=var.get) == "s_loo_minus_one"
        assert var["centered"] > 1.5 * var["s_loo_minus_one"]


def test_variance_falls_with_n(study):
    for name in ESTIMATORS:
        values = [study[n][name]["variance"] for n in (8, 16, 32)]
        assert values[0] > values[1] > values[2]


def test_at_n_equal_k_loo_minus_one_is_tzsm25_on_one_block():
    result = variance_at_n(4, 4, 1.0, 500, np.random.default_rng(0))
    assert result["s_loo_minus_one"] == result["loo_minus_one_partitioned"]
    assert "s_loo" not in result and "centered" not in result
