"""The inputs of :mod:`pkpo.metrics`: per-problem rows of any lengths, problem names, report
options.

Problems may have different numbers of samples, so their rows are kept flat, as
``(values, lengths)``, and padded with a mask where an array of equal rows is needed. Every
message names the problem (by its index, or its name from ``problem_ids``).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._backend import reject_masked_array, to_numpy
from ._validation import check_k


def ragged_rows(per_problem, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a list of 1-D arrays (or a 2-D array) into (values, lengths)."""
    reject_masked_array(per_problem, name)
    if isinstance(per_problem, (list, tuple)):
        for row in per_problem:
            reject_masked_array(row, name)
        try:
            rows = [to_numpy(row) for row in per_problem]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: could not read problem rows as arrays ({error}).") from None
    else:
        array = to_numpy(per_problem)
        if array.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D array (problems x samples) or a list of 1-D arrays; "
                f"got shape {array.shape}."
            )
        rows = list(array)
    if not rows:
        raise ValueError(f"{name} is empty; need at least one problem.")
    for p, row in enumerate(rows):
        if row.ndim != 1:
            raise ValueError(
                f"{name}[{p}] must be 1-D (the samples of one problem); got shape {row.shape}."
            )
        if row.size == 0:
            raise ValueError(f"{name}[{p}] has no samples; every problem needs at least one.")
        if row.dtype == object or not (
            np.issubdtype(row.dtype, np.number) or row.dtype == np.bool_
        ):
            raise ValueError(f"{name}[{p}] must hold numbers or booleans; got dtype {row.dtype}.")
    lengths = np.array([row.size for row in rows], dtype=np.int64)
    return np.concatenate(rows), lengths


def row_starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]])


def pad_rows(values: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, max n) values and mask from flat values; padding is 0 and masked out."""
    width = int(lengths.max())
    mask = np.arange(width)[None, :] < lengths[:, None]
    padded = np.zeros(mask.shape, dtype=values.dtype)
    padded[mask] = values  # row-major order of the mask matches the flat order
    return padded, mask


def check_binary_rows(values: np.ndarray, lengths: np.ndarray, labels) -> None:
    if values.dtype == np.bool_:
        return
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        problem = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise ValueError(
            "correct_per_problem must hold only 0/1 or booleans; "
            f"{problem_name(problem, labels)} has {values[bad[0]].item()!r}."
        )


def problem_labels(problem_ids, count: int):
    if problem_ids is None:
        return None
    labels = list(problem_ids)
    if len(labels) != count:
        raise ValueError(f"problem_ids has {len(labels)} names for {count} problems.")
    return labels


def problem_name(p: int, labels) -> str:
    return f"problem {p}" if labels is None else f"problem {labels[p]!r}"


def check_ks(ks) -> list[int]:
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        ks = [ks]
    try:
        ks = list(ks)
    except TypeError:
        raise ValueError(f"ks must be an int or a sequence of ints; got {ks!r}.") from None
    if not ks:
        raise ValueError("ks is empty; give at least one k.")
    return sorted({check_k(k) for k in ks})


def _check_n_bootstrap(n_bootstrap) -> int:
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, numbers.Integral)
        or n_bootstrap < 0
    ):
        raise ValueError(f"n_bootstrap must be a non-negative integer; got {n_bootstrap!r}.")
    return int(n_bootstrap)


def _check_confidence(confidence) -> float:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not 0 < confidence < 1
    ):
        raise ValueError(
            f"confidence must be a number strictly between 0 and 1; got {confidence!r}."
        )
    return float(confidence)


def check_options(ks, n_bootstrap, confidence, seed) -> tuple[list[int], int, float]:
    """The report options, checked: (sorted distinct ks, n_bootstrap, confidence); seed as given."""
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}.")
    return check_ks(ks), _check_n_bootstrap(n_bootstrap), _check_confidence(confidence)
