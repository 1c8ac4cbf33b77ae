"""Time every estimator of pkpo.advantages against np.argsort of the same array (numpy, one thread).

    python benchmarks/advantages.py            # the markdown table of benchmarks/README.md
    python benchmarks/advantages.py --quick    # fewer repeats

The floor for an estimator that sorts is one argsort of its (groups, n) float32 array; the ones
that do not sort are a few passes over it. Input: float32 rewards, uniform on [0, 1) for the
estimators that take any reward, 0/1 (each 1 with probability 0.3) for the binary-only ones;
estimators that take k run at k = n/4. Each time is CPU time, the best of 5 rounds of repeated
calls after one warm-up call, with ``validate=True`` (the default: NaN/inf and 0/1 checks, one
pass each) and with ``validate=False``. Tests never assert times; ratios are measured in the same
run.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one thread, set before numpy loads

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402

from pkpo import advantages  # noqa: E402

SHAPES = ((16384, 16), (4096, 64))
SEED = 0


def best_times(calls, rounds: int, budget: float) -> list[float]:
    """CPU seconds per call of each of ``calls``: the best of ``rounds`` rounds, each repeating a
    call for about ``budget`` s. The calls take turns within every round, so that a busy machine
    slows them alike and their ratios stay meaningful; CPU time (``time.process_time``) leaves
    out the time other processes hold the cores."""
    numbers = []
    for call in calls:
        call()  # warm-up (caches, first allocation)
        numbers.append(max(1, int(budget / max(_cpu_seconds(call, 1), 1e-6))))
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for index, (call, number) in enumerate(zip(calls, numbers)):
            best[index] = min(best[index], _cpu_seconds(call, number) / number)
    return best


def _cpu_seconds(call, number: int) -> float:
    return timeit.Timer(call, timer=time.process_time).timeit(number=number)


def rewards_for(name: str, shape, rng) -> np.ndarray:
    if advantages.spec(name).rewards == "binary":
        return (rng.random(shape) < 0.3).astype(np.float32)
    return rng.random(shape, dtype=np.float32)


def measure(rounds: int = 5, budget: float = 0.2) -> dict:
    """{(name, shape): (seconds with validate, seconds without, argsort seconds)}."""
    rng = np.random.default_rng(SEED)
    results = {}
    for shape in SHAPES:
        for name in advantages.names():
            x = rewards_for(name, shape, rng)
            params = {"k": shape[1] // 4} if advantages.spec(name).takes_k else {}
            calls = [
                lambda: advantages.compute(name, x, **params),
                lambda: advantages.compute(name, x, validate=False, **params),
                lambda: np.argsort(x, axis=-1),
            ]
            results[name, shape] = tuple(best_times(calls, rounds, budget))
    return results


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def table(results: dict) -> str:
    header = ["estimator"]
    for groups, n in SHAPES:
        header += [f"{groups} x {n}", "÷ argsort", "validate=False ÷ argsort"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (3 * len(SHAPES))]
    for name in advantages.names():
        cells = [f"`{name}`"]
        for shape in SHAPES:
            checked, unchecked, sort = results[name, shape]
            cells += [_ms(checked), f"{checked / sort:.1f}x", f"{unchecked / sort:.1f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    sorts = ", ".join(
        f"{g} x {n}: {_ms(np.median([results[name, (g, n)][2] for name in advantages.names()]))}"
        for g, n in SHAPES
    )
    lines += ["", f"np.argsort of the same float32 array (median over the rows): {sorts}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of about 0.05 s each")
    args = parser.parse_args(argv)
    results = measure(rounds=2, budget=0.05) if args.quick else measure()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"numpy {np.__version__}, one thread\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
