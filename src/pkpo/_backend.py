"""The caller's array library: numpy, PyTorch or JAX, through the Python array API standard.

The math in :mod:`pkpo._kernel`, :mod:`pkpo.transforms` and :mod:`pkpo.estimators` is written once
against an array-API namespace ``xp`` (``xp.cumulative_sum(x, axis=-1)``, ``xp.take_along_axis``,
``xp.where``, ...). ``jax.numpy`` and numpy >= 2.1 are such namespaces; torch and older numpy get
the few spellings they lack from :class:`_TorchAPI` and :class:`_NumpyBefore21`. A
:class:`Backend` adds what the standard leaves to each library: the dtype the scans run in,
moving data to and from the host, a sort that returns its permutation and its inverse (a scatter
on torch and numpy), and device copies of the host-side constants, made once.

Why not ``array_api_compat`` (scikit-learn's choice): with its namespaces swapped in for these,
``benchmarks/transform.py --threads 1`` on 2 CPU cores gave the same numpy times and torch times up
to 20 % slower (16384 x 16, k = 4: 14.4 against 9.9-12.3 ms), and it would replace only the two
small shims below while adding a dependency to the numpy-only math layer.

Array in, same kind out: numpy in gives numpy out, a torch tensor gives a torch tensor on the
same device, a JAX array gives a JAX array. Python lists and scalars are treated as numpy.

Half precision. float16 and bfloat16 input (numpy, torch or JAX) is accepted everywhere. The
sort runs in the input's dtype (exact: sorting does no arithmetic); every sum and weight after it
runs in :meth:`Backend.compute_dtype` (float64, or float32 on MPS and in JAX without x64), and
values read on the host go through :func:`to_numpy`, which widens torch half tensors to float32.
Results come back in the input's dtype, and float16 then loses small values: it flushes
magnitudes below about 6e-8 to 0, and PKPO's unscaled advantages (``scale="none"``) are of order
1/n. Measured with ``tests/test_backends.py::test_float16_flushes_as_documented`` (uniform
rewards, the default baseline, ``scale="none"``), the share of nonzero float64 advantages that
come back as 0 in float16 is 4.6 % at n = 256 and 21.0 % at n = 65,536 for k = 4, and 21.8 % and
45.9 % for k = 8. bfloat16 has float32's range and flushes nothing there, with 8 bits of
precision. Pass float32 (or ``scale="mean_abs"``, which brings the values to order 1) to keep them.
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Backend:
    """One array library: ``name`` ("numpy", "torch" or "jax") and its array-API namespace
    ``xp``."""

    name: str
    xp: Any

    # --- dtypes ---------------------------------------------------------------------------
    def is_floating(self, x) -> bool:
        if self.name == "numpy":  # dtype.kind: np.isdtype costs about 10 us a call
            return x.dtype.kind == "f"
        return self.xp.isdtype(x.dtype, "real floating")

    def is_bool(self, x) -> bool:
        if self.name == "numpy":
            return x.dtype.kind == "b"
        return self.xp.isdtype(x.dtype, "bool")

    def is_integer(self, x) -> bool:
        if self.name == "numpy":
            return x.dtype.kind in "iu"
        return self.xp.isdtype(x.dtype, "integral")

    def compute_dtype(self, x):
        """The dtype of the arithmetic after the sort: float64 wherever the library has it (not on
        MPS, nor in JAX unless ``jax_enable_x64`` is on)."""
        if self.name == "torch" and x.device.type == "mps":
            return self.xp.float32
        if self.name == "jax" and not _jax_x64():
            return self.xp.float32
        return self.xp.float64

    def result_dtype(self, x):
        """Floating input keeps its dtype; bool/int input gets the library's default float."""
        if self.is_floating(x):
            return x.dtype
        if self.name == "torch":
            import torch

            return torch.get_default_dtype()
        return self.compute_dtype(x)

    def astype(self, x, dtype):
        return self.xp.astype(x, dtype, copy=False)

    def shape(self, x) -> tuple[int, ...]:
        if self.name == "numpy":
            return x.shape
        return tuple(int(s) for s in x.shape)

    # --- moving data --------------------------------------------------------------------------
    def device(self, like):
        """Where new arrays go: ``like``'s device (JAX: the default device, also under jit)."""
        if self.name == "torch":
            return like.device
        return "cpu" if self.name == "numpy" else None

    def from_numpy(self, a: np.ndarray, like):
        """A host array as an array of this library on ``like``'s device (shares memory on the
        CPU)."""
        if self.name == "numpy":
            return a
        if self.name == "jax" and a.dtype == np.float64 and not _jax_x64():
            a = a.astype(np.float32)  # what JAX would do, without its warning
        return self.xp.asarray(a, device=self.device(like))

    def to_numpy(self, x) -> np.ndarray:
        return to_numpy(x)

    def widen(self, x):
        """``x``, or for a float dtype narrower than 32 bits (float16, bfloat16) ``x`` in float32:
        the arithmetic of pkpo never runs in half precision."""
        if self.is_floating(x) and _itemsize(x.dtype) < 4:
            return self.xp.astype(x, self.xp.float32)
        return x

    def constant(self, make, args: tuple, like, dtype):
        """``make(*args)`` (host numpy arrays in a NamedTuple, cached by ``make``) on ``like``'s
        device in ``dtype``, built once per (args, device, dtype) and kept: repeated calls move
        nothing to the device and hash a few ints, not the arrays' bytes."""
        if self.name == "numpy":
            host = make(*args)
            return (
                host if dtype == np.float64 else type(host)(*(part.astype(dtype) for part in host))
            )
        return _device_constant(make, args, self.name, self.device(like), dtype)

    def is_compiling(self) -> bool:
        """Whether torch.compile is tracing this call: host code (such as :meth:`constant`) cannot
        run there without breaking the graph, so callers compute such values with array ops."""
        if self.name != "torch":
            return False
        import torch

        return torch.compiler.is_compiling()

    # --- the sort -------------------------------------------------------------------------------
    def sort(self, x, padded: bool = False):
        """Ascending sort along the last axis: returns (values, indices).

        ``indices`` is whatever :meth:`unsort` needs: the permutation of each row (torch, JAX),
        or for numpy the flat positions of the sorted elements in ``x``, so that the gather here
        and the scatter of :meth:`unsort` are single fancy-indexing passes (numpy's
        take_along_axis and put_along_axis build index grids, and cost 10x more at 16384 x 16).
        numpy sorts float32 rows as packed float64 keys (:func:`_packed_float32_sort`), whose
        values come back in float64; ``padded``: ``x`` holds +inf padding (ragged groups),
        which those keys cannot carry.

        Not necessarily stable: every transform depends only on the sorted values (tied rewards
        get bit-identical results whatever their order, see tests/test_transforms.py), and
        numpy's default argsort is 2-4x faster than its stable one on (groups, n) float32 rows.
        """
        if self.name == "torch":
            import torch

            return torch.sort(x, dim=-1)  # values and indices in one kernel
        if self.name == "numpy":
            if x.dtype == np.float32 and not padded and _packs(x):
                packed = _packed_float32_sort(x)
                if packed is not None:
                    return packed
            flat = _flat_positions(np.argsort(x, axis=-1))
            out = scratch("sorted", x.shape, x.dtype)
            np.take(x.reshape(-1), flat, out=out.reshape(-1))
            return out, flat
        indices = self.xp.argsort(x, axis=-1, stable=False)
        return self.xp.take_along_axis(x, indices, axis=-1), indices

    def unsort(self, values, indices, dtype=None):
        """Inverse of :meth:`sort`: out[..., indices[..., j]] = values[..., j], cast to ``dtype``
        (default: values' dtype) on the way. Always a new array."""
        if self.name == "numpy":
            if (
                dtype is not None and values.dtype != dtype
            ):  # cast first: a casting scatter is 2x slower
                cast = scratch("cast", values.shape, dtype)
                np.copyto(cast, values)
                values = cast
            out = np.empty(values.shape, dtype=values.dtype)
            out.reshape(-1)[indices] = values.reshape(-1)
            return out
        if self.name == "torch":
            out = self.xp.empty_like(values).scatter_(-1, indices, values)
        else:
            # JAX: the inverse permutation by a second argsort of integer indices
            # (scatter-free, jit-safe)
            out = self.xp.take_along_axis(values, self.xp.argsort(indices, axis=-1), axis=-1)
        return out if dtype is None else self.astype(out, dtype)

    def to_compute_dtype(self, x, dtype):
        """``x`` in ``dtype``, as a work array (numpy: in a per-thread buffer, see
        :func:`scratch`)."""
        if self.name == "numpy" and x.dtype != dtype:
            out = scratch("compute", x.shape, dtype)
            np.copyto(out, x)
            return out
        return self.astype(x, dtype)

    def differences(self, values):
        """d_t = values_t - values_{t-1} along the last axis, with d_1 = 0 (same shape).

        numpy subtracts the flattened rows in one contiguous pass (slices of short rows cost
        about 40 ns a row), into a work buffer, and then zeroes the first column."""
        if self.name == "numpy":
            out = scratch("differences", values.shape, values.dtype)
            flat = values.reshape(-1)
            np.subtract(flat[1:], flat[:-1], out=out.reshape(-1)[1:])
            out[..., 0] = 0
            return out
        xp = self.xp
        return xp.concat([values[..., :1] * 0, values[..., 1:] - values[..., :-1]], axis=-1)

    def accumulate(self, out, x, coefficient=1.0):
        """out + coefficient * x (numpy: added into ``out``, a work array of the kernel, with no
        new array of out's size: fresh ones cost page faults, see :func:`scratch`)."""
        if self.name != "numpy":
            return out + coefficient * x
        if not (isinstance(coefficient, float) and coefficient == 1.0):
            shape = np.broadcast_shapes(np.shape(x), np.shape(coefficient))
            x = np.multiply(x, coefficient, out=scratch("scaled", shape, out.dtype))
        return np.add(out, x, out=out)

    def matmul(self, a, matrix):
        """a @ matrix (numpy: into a work buffer)."""
        if self.name == "numpy":
            return np.matmul(
                a, matrix, out=scratch("product", a.shape[:-1] + matrix.shape[-1:], a.dtype)
            )
        return a @ matrix

    def running_sum(
        self,
        v,
        weights=None,
        *,
        from_right: bool = False,
        inclusive: bool = True,
        slot: str = "running_sum",
        skip: int = 0,
    ):
        """Running sums along the last axis of the terms v_u w_u (w_u = 1 without ``weights``):
        sum_{u <= t} v_u w_u, or from the right sum_{u >= t} v_u w_u (``inclusive=False``:
        sum_{u > t} v_u w_u, 0 at the end). ``skip`` (prefix sums only): ``v`` and ``weights``
        hold the terms of the ranks from ``skip`` on, those below being 0.

        numpy writes into the work buffer ``slot``, and sums many rows block by block with BLAS,
        with one-dimensional weights inside the products (:func:`_blocked_running_sum`: 0.2-0.5
        ms where cumsum takes 0.9 ms, for 262,144 float64 terms).
        """
        if self.name == "numpy":
            shape = v.shape[:-1] + (v.shape[-1] + skip,)
            out = scratch(slot, shape, v.dtype)
            out[..., :skip] = 0  # the first ``skip`` ranks have no terms: their (prefix) sums are 0
            _numpy_running_sum(v, weights, from_right, inclusive, out[..., skip:])
            return out
        if weights is not None:
            v = v * weights
        if skip:
            v = self.xp.concat(
                [
                    self.xp.zeros(
                        self.shape(v)[:-1] + (skip,), dtype=v.dtype, device=self.device(v)
                    ),
                    v,
                ],
                axis=-1,
            )
        xp = self.xp
        if not from_right:
            return xp.cumulative_sum(v, axis=-1)
        total = xp.flip(xp.cumulative_sum(xp.flip(v, axis=-1), axis=-1), axis=-1)
        if inclusive:
            return total
        zero = xp.zeros(self.shape(v)[:-1] + (1,), dtype=v.dtype, device=self.device(v))
        return xp.concat([total[..., 1:], zero], axis=-1)

    def host_view(self, x):
        """``x`` as a numpy array sharing its memory, where the math may run in numpy instead: a
        torch CPU tensor that needs no autograd, outside torch.compile, of a dtype numpy has
        (not bfloat16). Else None.

        numpy's SIMD sort of short float rows is several times faster than torch's CPU sort
        (1 ms against about 5 ms at 4096 x 64 float32, one core), and the rest of the kernel is
        the same arithmetic in float64; :meth:`to_caller` hands the results back as tensors
        without a copy."""
        if self.name != "torch" or x.device.type != "cpu" or x.requires_grad or self.is_compiling():
            return None
        import torch

        if x.dtype == torch.bfloat16:
            return None
        return x.resolve_conj().resolve_neg().numpy()

    def to_caller(self, array):
        """A numpy result of :meth:`host_view`'s computation as a tensor of this library (no
        copy)."""
        import torch

        return torch.from_numpy(np.asarray(array))

    def reads_cheaply(self, x) -> bool:
        """Whether reading a few values of ``x`` on the host costs no device synchronisation and
        works at all: numpy, torch on the CPU outside torch.compile, concrete JAX arrays on the
        CPU."""
        if self.name == "numpy":
            return True
        if self.name == "torch":
            return x.device.type == "cpu" and not self.is_compiling()
        return not self.is_traced(x) and all(device.platform == "cpu" for device in x.devices())

    def is_traced(self, x) -> bool:
        """Whether ``x`` is a value being traced by ``jax.jit`` (its values cannot be read)."""
        if self.name != "jax":
            return False
        import jax

        return isinstance(x, jax.core.Tracer)


_BACKENDS: dict[str, Backend] = {}


def backend_of(x) -> Backend:
    """The backend for ``x``, found without importing libraries the caller has not imported."""
    torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
    if torch is not None and isinstance(x, torch.Tensor):
        name = "torch"
    elif jax is not None and isinstance(x, jax.Array):
        name = "jax"
    else:
        name = "numpy"
    backend = _BACKENDS.get(name)
    if backend is None:
        backend = _BACKENDS.setdefault(name, Backend(name, _namespace(name)))
    return backend


def _namespace(name: str):
    """The array-API namespace of a library (numpy >= 2.1 and jax.numpy are their own)."""
    if name == "torch":
        return _TorchAPI()
    if name == "jax":
        return importlib.import_module("jax.numpy")
    return np if hasattr(np, "cumulative_sum") else _NumpyBefore21()


def as_array(x, name: str = "rewards"):
    """``(backend, x)``: ``x`` itself if it is a torch/JAX array, else a numpy array.

    A nested Python list with rows of different lengths is refused with advice (numpy's own
    message names an "inhomogeneous shape").
    """
    backend = backend_of(x)
    if backend.name == "torch" and x.device.type == "meta":
        raise ValueError(
            f"{name} is a torch meta tensor: it has a shape but no values to compute on"
        )
    if backend.name != "numpy":
        return backend, x
    reject_masked_array(x, name)
    try:
        return backend, np.asarray(x)
    except ValueError:
        raise ValueError(
            f"{name} is a ragged nested list (rows of different lengths); pad it to a rectangular "
            "array and pass mask= (True on real samples), or use transform_grouped with a group id "
            "per reward."
        ) from None


# A float32 value read as a float64 has the 29 low bits of its mantissa 0: the packed sort keeps
# each element's flat position there.
_POSITION_BITS = 29
_PACKED_MAX_SIZE = 1 << _POSITION_BITS


def _packs(x: np.ndarray) -> bool:
    """Whether :func:`_packed_float32_sort` can take float32 ``x``: its positions fit in the key
    bits, and this thread keeps subnormal numbers (the key of a zero reward is a subnormal
    float64, which a sort in denormals-are-zero mode would turn into 0, losing the position; that
    mode is on after ``torch.set_flush_denormal(True)`` or loading a library built with
    -ffast-math)."""
    return 0 < x.size <= _PACKED_MAX_SIZE and bool(_SMALLEST_SUBNORMAL > 0.0)


_SMALLEST_SUBNORMAL = np.float64(5e-324)


def _packed_float32_sort(x: np.ndarray):
    """:meth:`Backend.sort` of float32 rows by one float64 sort of the keys

        key = float64(x) with its 29 low mantissa bits (0 for any float32) set to x's position,

    or None where a row holds inf or NaN. The keys order like the values (ties among themselves),
    and clearing the position bits after the sort leaves the sorted values in
    float64, exactly: no gather, no conversion. numpy sorts the float64 keys (SIMD) in 0.4-0.5 ms
    at 262,144 float32 rewards on one core, where np.argsort takes 1.0-1.2 ms and the gather and
    the conversion 0.25 ms more. inf with a position set is a NaN, whose bits the sort does not
    keep; NaN sorts last, so a row whose last key is NaN has lost positions, and then this returns
    None (the caller sorts again with argsort; validation rejects such rewards anyway). The keys
    and positions live in the work buffers "sorted" and "positions".
    """
    keys = scratch("sorted", x.shape, np.float64)
    np.copyto(keys, x)
    bits = keys.view(np.int64)
    np.bitwise_or(bits, _positions(x.size).reshape(x.shape), out=bits)
    keys.sort(axis=-1)
    if np.isnan(keys[..., -1]).any():
        return None
    low = np.int64((1 << _POSITION_BITS) - 1)
    positions = scratch("positions", x.shape, np.int64)
    np.bitwise_and(bits, low, out=positions)
    np.bitwise_and(bits, ~low, out=bits)
    return keys, positions.reshape(-1)


def _positions(size: int) -> np.ndarray:
    """0, 1, ..., size - 1 as int64: a slice of one per-thread array, extended when a larger size
    comes (up to the work-buffer limit; beyond it made afresh)."""
    kept = _SCRATCH.__dict__.get("arange")
    if kept is not None and kept.size >= size:
        return kept[:size]
    made = np.arange(size, dtype=np.int64)
    if size * made.itemsize <= _SCRATCH_MAX_BYTES:
        made.setflags(write=False)
        _SCRATCH.arange = made
    return made


def _flat_positions(indices: np.ndarray) -> np.ndarray:
    """Row-wise sort indices (..., n) as positions in the flattened array (in place)."""
    n = indices.shape[-1]
    indices += np.arange(0, indices.size, n, dtype=indices.dtype).reshape(indices.shape[:-1] + (1,))
    return indices.reshape(-1)


def _numpy_running_sum(
    v: np.ndarray, weights, from_right: bool, inclusive: bool, out: np.ndarray
) -> np.ndarray:
    """:meth:`Backend.running_sum` for numpy, into ``out`` (``v`` comes back unchanged).

    With at least BLOCKED_SCAN_MIN_ROWS rows the sums go block by block through BLAS
    (:func:`_blocked_running_sum`, which takes one-dimensional weights into its products); fewer,
    longer rows use cumsum of the terms."""
    n = v.shape[-1]
    rows = v.size // max(n, 1)
    inclusive = inclusive or not from_right  # sums from the left always include their term
    blocked = rows >= BLOCKED_SCAN_MIN_ROWS and v.flags.writeable
    if weights is not None and not (blocked and np.ndim(weights) == 1):
        v = np.multiply(v, weights, out=scratch("terms", v.shape, v.dtype))
        weights = None
    if blocked:
        _blocked_running_sum(
            v.reshape(rows, n), out.reshape(rows, n), from_right, inclusive, weights
        )
        return out
    if not from_right:
        return np.cumsum(v, axis=-1, out=out)
    if inclusive:
        np.cumsum(v[..., ::-1], axis=-1, out=out[..., ::-1])
    else:  # out[t] = v[t+1] + ... + v[n-1]
        np.cumsum(v[..., :0:-1], axis=-1, out=out[..., -2::-1])
        out[..., -1] = 0
    return out


# numpy's cumsum along rows costs about 3.4 ns an element on the development machine (one
# dependent addition after another, 0.9 ms at 4096 x 64 float64); the blocked BLAS scan takes
# 0.2-0.5 ms at 16384 x 16 ... 256 x 1024 and loses to cumsum only below a few hundred rows,
# where its Python loop over blocks (a few us each) dominates: 0.8-1.0 ms at 64 x 4096.
BLOCKED_SCAN_MIN_ROWS = 256


def _scan_block(rows: int) -> int:
    """Columns per block of :func:`_blocked_running_sum`: a block costs one BLAS call (a few
    us) plus about 2 (block + 1) flops an element, so many rows take narrow blocks (measured at
    4096 x 64: 0.21 ms with 8 columns, 0.40 ms with 16) and fewer rows wider ones (1024 x 256:
    0.30 ms with 16, 0.38 ms with 8)."""
    return 8 if rows >= 2048 else 16


def _blocked_running_sum(
    v: np.ndarray, out: np.ndarray, from_right: bool, inclusive: bool, weights=None
):
    """Running sums of v_u w_u along the rows of the 2-D ``v`` into ``out``, one BLAS product
    per block of columns.

    Each block's sums are [carry, v_s, ..., v_(e-1)] @ B (from the right the carry comes last):
    ``carry`` is the sum of every term before the block (after it, from the right), written for
    the product into the column of ``v`` just outside the block, whose term the previous block
    has used, and put back after. B is :func:`_scan_matrix`'s A with each term's row times its
    weight w_u. BLAS adds each output's terms in column order into one accumulator, and the
    products by 1 or 0 are exact: unweighted sums from the left are bit for bit cumsum's, and
    sums from the right add a block's terms left to right, so they may differ from a
    right-to-left cumsum in the last bit. A zero term (the gap between tied rewards) leaves the
    next sum bit for bit unchanged either way.
    """
    n = v.shape[-1]
    size = _scan_block(v.shape[0])
    matrix = _scan_matrix(size, from_right, inclusive).astype(v.dtype, copy=False)
    starts = range(0, n, size)
    for start in reversed(starts) if from_right else starts:
        stop = min(start + size, n)
        block = _block_matrix(matrix, start, stop, from_right, weights)
        if stop == n if from_right else start == 0:  # the first block: nothing carried in
            terms = block[:-1] if from_right else block[1:]
            np.matmul(v[:, start:stop], terms, out=out[:, start:stop])
            continue
        slot = stop if from_right else start - 1  # the column next to the block, already summed
        term = v[:, slot].copy()
        # the carry: the neighbour's running sum, plus its own term where that sum leaves it out
        if inclusive:
            v[:, slot] = out[:, slot]
        else:
            v[:, slot] = out[:, slot] + term * (1.0 if weights is None else weights[slot])
        inputs = v[:, start : stop + 1] if from_right else v[:, start - 1 : stop]
        np.matmul(inputs, block, out=out[:, start:stop])
        v[:, slot] = term


def _block_matrix(matrix: np.ndarray, start: int, stop: int, from_right: bool, weights):
    """B of the block of columns [start, stop): the top-left (width + 1, width) corner of
    :func:`_scan_matrix`'s A, each term's row times its weight; the carry's row (the first from
    the left, the last from the right) stays 1."""
    width = stop - start
    block = matrix[: width + 1, :width]
    if weights is None:
        return block
    one = np.ones(1, dtype=block.dtype)
    w = weights[start:stop]
    return block * np.concatenate([w, one] if from_right else [one, w])[:, None]


@functools.lru_cache(maxsize=16)
def _scan_matrix(size: int, from_right: bool, inclusive: bool) -> np.ndarray:
    """The (size + 1, size) 0/1 matrix A of one block of :func:`_blocked_running_sum`.

    From the left (inclusive sums), input row i = 0 is the carry and row i >= 1 the term of
    column i - 1, so A[i, j] = 1 for i <= j + 1. From the right, row i < size is the term of
    column i and row ``size`` the carry: A[i, j] = 1 for i >= j (inclusive) or i > j (exclusive).
    A block narrower than ``size`` uses the top-left corner."""
    i = np.arange(size + 1)[:, None]
    j = np.arange(size)[None, :]
    ones = (i >= j + (0 if inclusive else 1)) if from_right else (i <= j + 1)
    matrix = ones.astype(np.float64)
    matrix.setflags(write=False)
    return matrix


# Work arrays of the numpy kernel up to this size are kept per thread and reused: allocating them
# afresh made the transform 2.5x slower at 16384 x 16 float32 (about 2,300 page faults per call at
# about 2.6 us each on the development machine, against 3.5 ms for the work itself).
_SCRATCH_MAX_BYTES = 1 << 23
_SCRATCH = threading.local()


def scratch(slot: str, shape, dtype) -> np.ndarray:
    """A numpy work array of ``shape`` and ``dtype`` with undefined contents: the same memory for
    the same ``slot`` on every call of this thread (up to 8 MB each; larger arrays are allocated).
    Only for work inside one call: never returned to a caller, never two live uses of a slot."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > _SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype)
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    buffer = buffers.get(slot)
    if buffer is None or buffer.size < nbytes:
        buffer = buffers[slot] = np.empty(max(nbytes, 1), np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def reject_masked_array(x, name: str) -> None:
    """A numpy masked array is refused: ``np.asarray`` would silently drop its mask, and masked
    input has no single right output kind. The message says how to pass the same data."""
    if isinstance(x, np.ma.MaskedArray):
        raise ValueError(
            f"{name} is a numpy masked array, whose mask pkpo does not read; pass plain arrays: "
            f"the data ({name}.filled(0)) with mask=~np.ma.getmaskarray({name}) for the array "
            "functions, or each problem's valid samples (np.ma.compressed(row)) for the reports."
        )


def to_numpy(x) -> np.ndarray:
    """Any array as a numpy array on the host, for reading values and for libraries that take
    numpy: a torch tensor is detached and copied off its device, and torch float16 / bfloat16 is
    widened to float32 (numpy has no bfloat16; float16 is widened alike, so both read the same
    way). JAX arrays, numpy arrays and nested lists go through ``np.asarray``, JAX's bfloat16
    becoming float32.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:
            x = x.float()
        return x.numpy()
    x = np.asarray(x)
    if x.dtype.name == "bfloat16":  # JAX's bfloat16 (ml_dtypes), which numpy cannot compute with
        return x.astype(np.float32)
    return x


def _itemsize(dtype) -> int:
    """Bytes per element of a numpy, torch or JAX dtype."""
    size = getattr(dtype, "itemsize", None)
    return int(size) if size is not None else np.dtype(dtype).itemsize


def _jax_x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


@functools.lru_cache(maxsize=128)
def _device_constant(make, args: tuple, library: str, device, dtype):
    """The body of :meth:`Backend.constant` for torch and JAX (lru_cache: thread-safe, bounded).

    Cast on the host first (MPS has no float64 to receive the arrays in), then moved once.
    """
    host = make(*args)
    if library == "torch":
        import torch

        host_dtype = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
        return type(host)(*(torch.from_numpy(part.astype(host_dtype)).to(device) for part in host))
    import jax
    import jax.numpy as jnp

    with jax.ensure_compile_time_eval():  # a concrete array, also when first built inside jax.jit
        return type(host)(*(jnp.asarray(part.astype(np.dtype(dtype))) for part in host))


class _TorchAPI:
    """torch with the array-API spellings pkpo uses that torch lacks; every other name is torch's
    own (``sum``, ``cumsum`` and ``argsort`` accept ``axis=`` and ``keepdims=`` there too)."""

    def __init__(self):
        import torch

        self._torch = torch

    def __getattr__(self, name):  # the first lookup of a name; later ones find the attribute
        value = getattr(self._torch, name)
        setattr(self, name, value)
        return value

    def cumulative_sum(self, x, axis):
        return self._torch.cumsum(x, dim=axis)

    def flip(self, x, axis):
        return self._torch.flip(x, dims=(axis,))

    def concat(self, arrays, axis):
        return self._torch.cat(arrays, dim=axis)

    def take_along_axis(self, x, indices, axis):
        return self._torch.take_along_dim(x, indices, dim=axis)

    def astype(self, x, dtype, copy=True):
        return x.to(dtype, copy=copy)

    def isdtype(self, dtype, kind):
        if kind == "bool":
            return dtype == self._torch.bool
        if kind == "real floating":
            return dtype.is_floating_point
        return not (
            dtype.is_floating_point or dtype.is_complex or dtype == self._torch.bool
        )  # "integral"


class _NumpyBefore21:
    """numpy < 2.1 with the array-API spellings pkpo uses (numpy 2.1 has them all)."""

    def __getattr__(self, name):
        value = getattr(np, name)
        setattr(self, name, value)
        return value

    def cumulative_sum(self, x, axis):
        return np.cumsum(x, axis=axis)

    def concat(self, arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def argsort(self, x, axis, stable=True):
        return np.argsort(x, axis=axis, kind="stable" if stable else None)

    def astype(self, x, dtype, copy=True):
        return x.astype(dtype, copy=copy)

    def isdtype(self, dtype, kind):
        return np.issubdtype(
            dtype, {"bool": np.bool_, "real floating": np.floating, "integral": np.integer}[kind]
        )

    def zeros(self, shape, dtype, device=None):
        return np.zeros(shape, dtype=dtype)

    def arange(self, n, device=None):
        return np.arange(n)
