"""Checkpoints: a round trip, and a clear ValueError for a truncated, garbled, foreign or incomplete
file."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

STATE = {
    "step": 3,
    "model": {"w": torch.arange(1000.0)},
    "optimizer": {},
    "rng": {},
    "config": {"seed": 0},
}


def test_round_trip_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, STATE)
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], STATE["model"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "empty"])
def test_damaged_file_is_refused(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, STATE)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":  # a flipped byte in the tensor data: torch.load alone would not notice
        raw[len(raw) - 2000] ^= 0xFF
    elif damage == "foreign":
        raw = bytearray(b"not a checkpoint")
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is corrupted \\(checksum mismatch\\)"):
        load_checkpoint(path)


def test_incomplete_state_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(ValueError, match="lacks \\['config', 'model', 'optimizer', 'rng'\\]"):
        load_checkpoint(path)
