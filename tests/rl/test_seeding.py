"""pkpo.rl.seeding: each named stream is the generator the trainer has always used."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pkpo.rl import seeding  # noqa: E402


@pytest.mark.parametrize(
    "name, salt",
    [
        ("problems", 7919),
        ("nl_problems", 104729),
        ("warm_start", 104729),
        ("rule_accuracy", 15485863),
        ("data_order", 31337),
    ],
)
def test_numpy_streams_keep_their_salts(name, salt):
    a = seeding.stream(5, name).integers(0, 2**31, size=8)
    assert np.array_equal(a, np.random.default_rng([5, salt]).integers(0, 2**31, size=8))


@pytest.mark.parametrize(
    "name, offset",
    [("sampling", 1_000_003), ("eval", 0), ("greedy_eval", 104_729), ("rule_accuracy", 0)],
)
def test_torch_streams_keep_their_offsets(name, offset):
    a = torch.rand(6, generator=seeding.torch_stream(5, name))
    assert torch.equal(a, torch.rand(6, generator=torch.Generator().manual_seed(5 + offset)))


def test_eval_seed_and_distinct_streams():
    assert seeding.eval_seed(3, 40) == 3 * 7919 + 40
    draws = {name: seeding.stream(0, name).random() for name in ("problems", "data_order")}
    assert draws["problems"] != draws["data_order"]


def test_unknown_stream_is_a_value_error():
    with pytest.raises(ValueError, match="unknown random stream 'warm'"):
        seeding.stream(0, "warm")
    with pytest.raises(ValueError, match="unknown random stream 'data_order'"):
        seeding.torch_stream(0, "data_order")
