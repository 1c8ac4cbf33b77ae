"""Checkpoints of an RL run: a sha256 line, then the ``torch.save`` payload, replaced whole.

The file is written with :func:`pkpo._output.atomic_write` (temp file, fsync, ``os.replace``), so a
crash leaves the old checkpoint or the new one. The checksum is kept because atomic writing alone
does not catch a file damaged later: ``torch.load`` refuses a truncated file but loads a flipped
byte in the payload silently (measured: 198 of 200 single-byte flips in a checkpoint loaded without
error, with wrong values).

A checkpoint holds the step, the model and optimizer state, every RNG state (:func:`rng_state`), the
data order and the config; :func:`truncate_metrics` drops the metrics logged after it, so a resumed
run logs exactly what the uninterrupted run would have.

What is trusted. The checksum detects damage, not tampering: whoever can write the file can write a
matching hash. So a checkpoint is loaded with ``torch.load(..., weights_only=True)``, which builds
tensors, containers and numbers only, plus the allow-list :data:`ALLOWED_GLOBALS` (numpy's array
reconstruction, ``np.ndarray`` and the dtypes of the saved random states). A file that asks for
anything else (a pickled ``os.system`` call, say) raises a one-line ValueError and nothing in it
runs. What such a file can still do is hold wrong numbers; the loaded state is checked for its
shape (:func:`load_checkpoint`) and for fitting the run, not for honesty.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from ..._output import atomic_write, json_text
from .runfiles import read_metrics

REQUIRED = ("step", "model", "optimizer", "rng", "config")
# Beyond tensors and plain containers, a checkpoint holds numpy's legacy random state, a uint32
# array: the pickle refers to these globals. (name, object) pairs; the numpy 1.x module path is an
# alias.
_RECONSTRUCT = np._core.multiarray._reconstruct
ALLOWED_GLOBALS = [
    _RECONSTRUCT,
    (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` to ``path`` as one sha256 hex line followed by the ``torch.save`` bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    atomic_write(path, hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def load_checkpoint(path) -> dict:
    """Load and verify a checkpoint; a damaged, truncated, foreign or crafted file raises
    ValueError.

    Nothing but tensors, plain data and :data:`ALLOWED_GLOBALS` is built (``weights_only=True``),
    so a file that carries code is refused before any of it runs. The state must be a dict with
    the keys of :data:`REQUIRED`, a step that is a non-negative integer, a model state of named
    tensors, a config dict, and no tensor without data (``meta``).
    """
    name = repr(str(path))
    raw = Path(path).read_bytes()
    digest, _, payload = raw.partition(b"\n")
    if len(digest) != 64 or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(
            f"checkpoint {name} is corrupted (checksum mismatch); delete it or start without "
            "--resume"
        )
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"checkpoint {name} holds more than tensors and plain data ({_refused(exc)}); it was "
            "not loaded and nothing in it ran: delete it, or start without --resume"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure means the file is unusable
        raise ValueError(f"checkpoint {name} cannot be read: {one_line(exc)}") from None
    _check_state(state, name)
    return state


def _check_state(state, name: str) -> None:
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint {name} is not a pkpo checkpoint (it holds a {type(state).__name__})"
        )
    missing = set(REQUIRED) - set(state)
    if missing:
        raise ValueError(f"checkpoint {name} lacks {sorted(missing)}")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint {name} has step {step!r}; expected an integer >= 0")
    model = state["model"]
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        raise ValueError(f"checkpoint {name}: 'model' is not a state dict of named tensors")
    for key in ("optimizer", "rng", "config"):
        if not isinstance(state[key], dict):
            raise ValueError(
                f"checkpoint {name}: {key!r} is a {type(state[key]).__name__}, not a dict"
            )
    if any(t.is_meta for t in _tensors(state)):
        raise ValueError(
            f"checkpoint {name} holds tensors without data (on the meta device); it cannot be "
            "resumed"
        )


def _tensors(value):
    """Every tensor inside nested dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed), cut to ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refused(error: BaseException) -> str:
    """What torch's weights-only unpickler refused, from its long message: 'posix.system', say."""
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    if match:
        return f"it asks for {match.group(1)}, which is not allowed"
    match = re.search(r"WeightsUnpickler error: ([^\n]+)", str(error))
    return match.group(1).strip() if match else one_line(error)


def rng_state(gen: torch.Generator, data_rng: np.random.Generator) -> dict:
    """Every random state the loop draws from: python, numpy, torch (and CUDA), the sampler, the
    data order."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "sampler": gen.get_state(),
        "data": data_rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator, data_rng: np.random.Generator) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    gen.set_state(state["sampler"])
    data_rng.bit_generator.state = state["data"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of ``metrics.jsonl`` logged at or after ``step`` (they will be logged again,
    identically).

    A torn last line (a write cut short) is dropped with a note on stderr; a bad line before the
    last one is a ValueError naming the file and the line (:func:`~.runfiles.read_metrics`).
    """
    if not path.exists():
        return
    records = read_metrics(path, note="it is logged again")
    keep = [rec for rec in records if "config" in rec or rec.get("step", 0) < step]
    atomic_write(path, "".join(json_text(rec) + "\n" for rec in keep))
