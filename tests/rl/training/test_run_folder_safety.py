"""What a run folder may hold and what pkpo does with it: links are not followed, leftovers of
killed writes are cleaned, a torn metrics line does not block --resume, a crafted checkpoint runs
nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.cli import train_main  # noqa: E402
from pkpo.rl.training import rundir  # noqa: E402
from pkpo.rl.training.checkpoint import load_checkpoint  # noqa: E402
from pkpo.rl.training.trainer import train  # noqa: E402

from test_trainer import DigitTask, tiny_config, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)

torch.set_num_threads(1)


# --- the lock file and leftovers ------------------------------------------------------------------


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / rundir.LOCK_NAME).symlink_to(precious)
    with pytest.raises(rundir.RunDirError, match=r"\.pkpo\.lock' is a symbolic link"):
        rundir.RunLock(folder)
    assert train_main(["--out", str(folder), "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo train: error: ") and "symbolic link" in err and err.count("\n") == 1
    assert precious.read_text() == "keep me"


def test_a_hard_linked_lock_file_is_refused(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / rundir.LOCK_NAME).hardlink_to(precious)
    with pytest.raises(rundir.RunDirError, match="has other hard links"):
        rundir.RunLock(folder)
    assert precious.read_text() == "keep me"


def test_leftovers_of_killed_writes_are_removed_under_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("checkpoint.pt.tmp4711", "metrics.jsonl.tmp12", "final.json.tmp9"):
        (folder / name).write_bytes(b"half a file")
    (folder / "notes.tmp").write_text("mine")  # not pkpo's: no pid
    (folder / "data.txt").write_text("mine")
    with rundir.open_run(folder):
        assert sorted(p.name for p in folder.iterdir()) == [".pkpo.lock", "data.txt", "notes.tmp"]


# --- checkpoints: weights only, an allow-list, one-line errors ---------------------------------


class _TouchMarker:
    """Pickles as a call of os.system, as in a tampered checkpoint (here a harmless touch)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _rewrite(path: Path, state: dict) -> None:
    """Save ``state`` as a checkpoint with a valid hash, as anyone who can write the file can."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    path.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of 4 steps with checkpoints; returns its config and checkpoint state."""
    cfg = tiny_config(tmp_path_factory.mktemp("ck"), steps=4, eval_problems=0)
    train(cfg, tiny_gpt(), DigitTask(), progress=False)
    path = Path(cfg.out_dir) / "checkpoint.pt"
    return cfg, path.read_bytes(), load_checkpoint(path)


def _resume_from(tmp_path, finished_run, state=None, raw=None):
    cfg, good, _ = finished_run
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("metrics.jsonl",):
        (folder / name).write_bytes((Path(cfg.out_dir) / name).read_bytes())
    path = folder / "checkpoint.pt"
    if state is not None:
        _rewrite(path, state)
    else:
        path.write_bytes(raw or good)
    return cfg.replace(out_dir=str(folder), steps=6), path


def test_a_real_checkpoint_loads_with_weights_only(finished_run):
    _, _, state = finished_run
    assert state["step"] == 4 and state["rng"]["numpy"][1].dtype == "uint32"


def test_a_crafted_checkpoint_runs_nothing(tmp_path, finished_run):
    marker = tmp_path / "ran"
    _, _, state = finished_run
    cfg, path = _resume_from(tmp_path, finished_run, state={**state, "extra": _TouchMarker(marker)})
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert (
        "holds more than tensors and plain data (it asks for posix.system, which is not allowed)"
    ) in message
    assert "nothing in it ran" in message and "\n" not in message
    with pytest.raises(ValueError, match="it asks for posix.system"):
        train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: [1, 2], r"is not a pkpo checkpoint \(it holds a list\)"),
        (lambda s: {**s, "step": "4"}, r"has step '4'; expected an integer >= 0"),
        (lambda s: {**s, "model": [1.0]}, r"'model' is not a state dict of named tensors"),
        (lambda s: {**s, "rng": None}, r"'rng' is a NoneType, not a dict"),
        (
            lambda s: {
                **s,
                "model": {k: torch.empty(v.shape, device="meta") for k, v in s["model"].items()},
            },
            r"holds tensors without data \(on the meta device\)",
        ),
    ],
)
def test_a_checkpoint_of_unexpected_content_is_one_line(tmp_path, finished_run, change, match):
    _, _, state = finished_run
    cfg, path = _resume_from(tmp_path, finished_run, state=change(state))
    with pytest.raises(ValueError, match=match) as caught:
        train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda s: {**s, "model": {**s["model"], "extra.weight": torch.zeros(2)}},
            r"Unexpected key",
        ),
        (lambda s: {**s, "model": {k: torch.zeros(3) for k in s["model"]}}, r"size mismatch"),
        (
            lambda s: {**s, "batcher": {"order": [0, 1], "pos": 0}},
            r"not an order of the 8 training problems",
        ),
        (lambda s: {**s, "solved": [True]}, r"solved/seen flags have 1/8 entries for 8 problems"),
        (lambda s: {**s, "rng": {**s["rng"], "numpy": "x"}}, r"does not fit this run"),
    ],
)
def test_a_checkpoint_that_does_not_fit_the_run_is_one_line(tmp_path, finished_run, change, match):
    _, _, state = finished_run
    cfg, path = _resume_from(tmp_path, finished_run, state=change(state))
    with pytest.raises(ValueError, match=match) as caught:
        train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {str(path)!r} does not fit this run (")
    assert "\n" not in message


# --- metrics.jsonl -----------------------------------------------------------------------------


def test_a_torn_last_metrics_line_is_dropped_with_a_note(tmp_path, finished_run, capsys):
    cfg, path = _resume_from(tmp_path, finished_run)
    metrics = path.parent / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    torn = '{"step": 4, "train/loss": 0.1, "train/rew'  # a record cut short by a kill
    metrics.write_text("\n".join(lines) + "\n" + torn)
    train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)
    err = capsys.readouterr().err
    assert (
        f"pkpo: note: dropped line {len(lines) + 1} of {str(metrics)!r}, cut short by an "
        "interrupted write"
    ) in err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records[1:] if "loss/policy" in r] == list(range(6))


def test_a_damaged_metrics_line_before_the_last_is_one_line_error(tmp_path, finished_run):
    cfg, path = _resume_from(tmp_path, finished_run)
    metrics = path.parent / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    lines[2] = lines[2][:10]
    metrics.write_text("\n".join(lines) + "\n")
    damaged = r"metrics.jsonl' line 3 is not a metrics record \(.*\); the file is damaged"
    with pytest.raises(ValueError, match=damaged):
        train(cfg, tiny_gpt(), DigitTask(), resume=True, progress=False)


def test_a_warm_start_cache_of_meta_tensors_is_rebuilt_from_the_initial_weights(tmp_path):
    from pkpo.rl.policies.gpt import GPT, GPTConfig
    from pkpo.rl.tasks.hidden_rule import HiddenRuleTask
    from pkpo.rl.training.warmstart import warm_start

    task = HiddenRuleTask(feature="sum", n_train=16, n_heldout=8, n_validation=8)

    def fresh():
        torch.manual_seed(0)
        return GPT(GPTConfig(d_model=32, n_layer=1, n_head=2))

    reference = fresh()
    info = warm_start(reference, task, steps=2, batch=4, cache_dir=tmp_path / "a", progress=False)
    cache = Path(info["path"])
    state = torch.load(cache, weights_only=True)
    names = list(state["model"])  # the first tensor fits, the rest have no data
    state["model"] = {
        n: (v + 1 if i == 0 else torch.empty(v.shape, device="meta"))
        for i, (n, v) in enumerate(state["model"].items())
    }
    damaged = tmp_path / "b" / cache.name
    damaged.parent.mkdir()
    torch.save(state, damaged)
    policy = fresh()
    again = warm_start(policy, task, steps=2, batch=4, cache_dir=tmp_path / "b", progress=False)
    assert not again["cached"] and names
    for (name, a), b in zip(reference.state_dict().items(), policy.state_dict().values()):
        assert torch.equal(a, b), name
