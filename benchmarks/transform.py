"""Time pkpo's reward transform against np.argsort, the paper's algorithm as a plain-Python loop,
and verl.

    python benchmarks/transform.py --argsort    # transform / np.argsort per shape, one core (~30 s)
    python benchmarks/transform.py              # full run, about a minute on 2 CPU cores
    python benchmarks/transform.py --quick      # a few seconds
    python benchmarks/transform.py --threads 1  # on a busy machine (see benchmarks/README.md)
    python benchmarks/transform.py --device cuda --json bench.json

Everything but ``--argsort`` is ``pkpo bench`` (pkpo/commands/bench.py) plus two references in the
first table: the per-group loop of benchmarks/reference_loop.py with its rank weights from
math.comb (Listing 1's way) or from O(1) ratio recurrences. After its tables this script checks
the project's own targets (met / NOT met), which are repository matters, not part of ``pkpo bench``.
Every ratio is measured in the same run.

``--argsort`` prints one markdown table: ``pkpo.transform(x, k)`` (default baseline, validation
on) on float32 numpy and CPU torch input against ``np.argsort(x, axis=-1)`` of the same array,
at every shape of the shapes table, on one core (one torch thread, BLAS limited to one thread by
the caller's environment: set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1). Times are CPU time
(time.process_time), best of 9 rounds of 10 calls in which the argsort and the transforms take
turns, so that other processes on a shared machine count as little as possible and alike.
"""

import argparse
import os
import sys
import time
import timeit

import numpy as np
from reference_loop import comb_weights, ratio_weights, time_loop

import pkpo
from pkpo._output import markdown_table
from pkpo.commands.bench import GROWTH_TOTAL, SHAPES, Reference, _fastest, main

LOOPS = (
    Reference(
        "loop",
        "loop, math.comb",
        "math.comb loop / pkpo",
        lambda rewards, k, budget: time_loop(rewards, k, comb_weights, budget),
    ),
    Reference(
        "loop_ratio",
        "loop, ratios",
        "ratio loop / pkpo",
        lambda rewards, k, budget: time_loop(rewards, k, ratio_weights, budget),
    ),
)

# The transform's budget against the sort it cannot avoid (issue 17): at most this many np.argsort.
ARGSORT_TARGET = 3.0


# --- transform / np.argsort --------------------------------------------------------------------


def cpu_times(calls, number: int = 10, rounds: int = 9) -> list[float]:
    """CPU seconds per call of each of ``calls``: the best of ``rounds`` rounds of ``number``
    calls, after one warm-up call each. The calls take turns within every round, so that a burst
    of load on a shared machine (other processes evicting the caches) falls on all of them alike
    and their ratios compare like with like."""
    for call in calls:
        call()
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for index, call in enumerate(calls):
            seconds = timeit.Timer(call, timer=time.process_time).timeit(number=number)
            best[index] = min(best[index], seconds / number)
    return best


def argsort_rows(shapes=SHAPES, seed: int = 0) -> list[dict]:
    """For each shape and k in (n/4, n): CPU ms of np.argsort and of pkpo.transform on numpy and
    on torch (CPU) float32, and the transform's ratio to the argsort."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(seed)
    rows = []
    for groups, n in shapes:
        x = rng.random((groups, n), dtype=np.float32)
        for k in (n // 4, n):
            calls = {
                "argsort_s": lambda: np.argsort(x, axis=-1),
                "numpy_s": lambda: pkpo.transform(x, k),
            }
            if torch is not None:
                tensor = torch.from_numpy(x)
                calls["torch_s"] = lambda: pkpo.transform(tensor, k)
            times = cpu_times(list(calls.values()))
            rows.append({"groups": groups, "n": n, "k": k, **dict(zip(calls, times))})
    return rows


def argsort_table(rows: list[dict]) -> str:
    header = [
        "groups x n",
        "k",
        "np.argsort",
        "numpy f32",
        "numpy / argsort",
        "torch f32 CPU",
        "torch / argsort",
    ]
    body = []
    for row in rows:
        cells = [f"{row['groups']} x {row['n']}", str(row["k"]), f"{row['argsort_s'] * 1e3:.2f} ms"]
        for key in ("numpy_s", "torch_s"):
            if key in row:
                cells += [f"{row[key] * 1e3:.2f} ms", f"{row[key] / row['argsort_s']:.1f}x"]
            else:
                cells += ["-", "-"]
        body.append(cells)
    return markdown_table(header, body)


def argsort_verdict(rows: list[dict]) -> str:
    worst = max(
        row[key] / row["argsort_s"] for row in rows for key in ("numpy_s", "torch_s") if key in row
    )
    verdict = "met" if worst <= ARGSORT_TARGET else "NOT met"
    return (
        f"- transform <= {ARGSORT_TARGET:g}x np.argsort at every shape: "
        f"worst {worst:.1f}x -> {verdict}"
    )


# --- the project's targets, from pkpo bench's results -------------------------------------------


def targets(results: dict) -> list[str]:
    """The project's stated targets, each with the measured number ('pkpo': numpy or torch,
    whichever was faster)."""
    lines = []
    verl = results.get("verl", {})
    if "verl_s" in verl:
        ratio = verl["verl_s"] / verl["pkpo_transform_s"]
        lines.append(
            f"- CPU >= 50x faster than verl grpo_passk at 512 x 16, k = n: "
            f"{ratio:,.0f}x (pkpo.transform, torch) -> {'met' if ratio >= 50 else 'NOT met'}; "
            f"pkpo's verl estimator on the same token-level inputs: "
            f"{verl['verl_s'] / verl['pkpo_estimator_s']:,.1f}x"
        )
    for row in results.get("shapes", []):
        if (row["groups"], row["n"]) == (4096, 64) and "loop_s" in row:
            ratio = row["loop_s"] / _fastest(row)
            lines.append(
                f"- >= 100x faster than the per-group loop at 4096 x 64, k = {row['k']}: "
                f"{ratio:,.0f}x (math.comb loop / pkpo) -> {'met' if ratio >= 100 else 'NOT met'}; "
                "against the loop with ratio recurrences: "
                f"{row['loop_ratio_s'] / _fastest(row):,.0f}x"
            )
    growth = results.get("growth", [])
    if len(growth) >= 2 and growth[-1]["n"] == 65536 and growth[0]["n"] == 64:
        for key, name in (("numpy_s", "numpy"), ("torch_cpu_s", "torch")):
            if key in growth[0]:
                ratio = growth[-1][key] / growth[0][key]
                lines.append(
                    f"- {GROWTH_TOTAL:,} rewards, {name}: "
                    "time at n = 65,536 (k = n/2) within 3x of "
                    f"n = 64: {ratio:.2f}x -> {'met' if ratio <= 3 else 'NOT met'}"
                )
    return lines


def targets_section(results: dict) -> str:
    lines = targets(results)
    return "## Targets\n\n" + (
        "\n".join(lines) if lines else "(none of the targets' shapes was run)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--argsort", action="store_true")
    known, rest = parser.parse_known_args(sys.argv[1:])
    if known.argsort:
        rows = argsort_rows()
        print(
            f"pkpo {os.path.dirname(pkpo.__file__)}, numpy {np.__version__}, CPU time, one core\n"
        )
        print(argsort_table(rows))
        print(f"\n{argsort_verdict(rows)}")
        sys.exit(0)
    sys.exit(main(rest, references=LOOPS, sections=(targets_section,)))
