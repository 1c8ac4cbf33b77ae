"""``pkpo bench``: time the PKPO reward transform, on its own and against verl's ``grpo_passk``.

Every ratio in the output is measured in the same run, on the same machine, on the same data:

1. **Shapes** (groups x n) = 16384 x 16, 4096 x 64, 1024 x 256, 64 x 4096, at k = n/4 and k = n,
   ``pkpo.transform(rewards, k)`` (baseline ``loo_minus_one``, the paper's PKPO) on float32 numpy
   and torch arrays, and against any :class:`Reference` implementations given to :func:`main`,
   each timed on a subset of the groups and scaled to all of them.
2. **verl** 0.9.1's ``grpo_passk`` estimator (``compute_grpo_passk_outcome_advantage``, TZSM25:
   the k = n case) at 512 groups x 16, on the same token-level inputs as pkpo's own verl
   estimator, with ``norm_adv_by_std_in_grpo=False``; the advantages are checked to be equal.
3. **Growth**: a fixed total of 262,144 rewards split into groups of n = 64 ... 65,536, k = n/2.
4. **CUDA** (``--device cuda``): the same shapes on the GPU with ``validate=False`` (the sync-free
   path), timed with CUDA events, next to a plain ``torch.sort`` of the same tensor.

Run ``pkpo bench`` (about a minute on 2 CPU cores), ``pkpo bench --quick`` (a few seconds: small
shapes, no verl), ``pkpo bench --device cuda``, and add ``--json PATH`` for machine-readable
results. ``benchmarks/transform.py`` runs the same code with the paper's algorithm as a
plain-Python per-group loop (benchmarks/reference_loop.py) as a reference in the first table.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._cli import Parser, UsageError, fail, non_negative_int, positive_int
from .._output import OutputPathError, check_output_path, markdown_table, write_json

SHAPES = [(16384, 16), (4096, 64), (1024, 256), (64, 4096)]
QUICK_SHAPES = [(512, 16), (32, 256)]
GROWTH_TOTAL = 262_144
GROWTH_NS = [64, 1024, 16384, 65536]
QUICK_GROWTH_NS = [64, 4096]
VERL_SHAPE = (512, 16)


class Reference(NamedTuple):
    """A slower implementation of the transform, timed beside pkpo in the shapes table."""

    key: str  # prefix of its entries in the results: "{key}_s", "{key}_groups_timed", ...
    title: str  # its column, e.g. "loop, math.comb"
    ratio_title: str  # the column of its time over pkpo's, e.g. "math.comb loop / pkpo"
    run: Callable  # (float64 rewards (groups, n), k, budget in s) -> {"seconds", "timed", "out"}


# --- timing -----------------------------------------------------------------------------------


def best_time(fn: Callable[[], object], min_time: float = 0.15, repeats: int = 5) -> float:
    """Seconds per call: the best of ``repeats`` rounds, each long enough to time (>=
    min_time/5)."""
    fn()  # warm up (caches, lazy imports, allocator)
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    number = max(1, int(min_time / repeats / max(once, 1e-9)))
    best = once
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def cuda_time(torch, fn: Callable[[], object], iterations: int = 50) -> float:
    """Seconds per call of ``fn`` on the GPU, by CUDA events around ``iterations`` calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iterations


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else (f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x")


# --- the sections -----------------------------------------------------------------------------


def time_backends(rewards: np.ndarray, k: int, device: str, min_time: float) -> dict:
    """pkpo.transform on numpy and torch CPU float32 (and CUDA, sync-free, next to torch.sort)."""
    import pkpo

    torch = _torch()
    row = {"numpy_s": best_time(lambda: pkpo.transform(rewards, k), min_time)}
    if torch is not None:
        x = torch.from_numpy(rewards)
        row["torch_cpu_s"] = best_time(lambda: pkpo.transform(x, k), min_time)
        if device == "cuda":
            xc = x.cuda()
            row["cuda_s"] = cuda_time(torch, lambda: pkpo.transform(xc, k, validate=False))
            row["cuda_sort_s"] = cuda_time(torch, lambda: torch.sort(xc, dim=-1))
    return row


def bench_shapes(
    shapes, device: str, rng, references=(), loop_budget: float = 0.5, min_time: float = 0.15
):
    import pkpo

    rows = []
    for groups, n in shapes:
        rewards = rng.random((groups, n), dtype=np.float32)
        for k in (n // 4, n):
            row = {"groups": groups, "n": n, "k": k, **time_backends(rewards, k, device, min_time)}
            for reference in references:
                run = reference.run(rewards.astype(np.float64), k, loop_budget)
                row[f"{reference.key}_s"], row[f"{reference.key}_groups_timed"] = (
                    run["seconds"],
                    run["timed"],
                )
                expected = pkpo.transform(rewards[: run["timed"]].astype(np.float64), k)
                row[f"{reference.key}_max_abs_diff"] = float(np.abs(run["out"] - expected).max())
            rows.append(row)
    return rows


def bench_growth(ns, device: str, rng, min_time: float = 0.15) -> list[dict]:
    import pkpo

    rows = []
    for n in ns:
        groups = GROWTH_TOTAL // n
        rewards = rng.random((groups, n), dtype=np.float32)
        k = n // 2
        start = time.perf_counter()
        pkpo.transform(rewards, k)  # includes building the cached rank weights for (n, k)
        row = {"groups": groups, "n": n, "k": k, "first_call_s": time.perf_counter() - start}
        rows.append({**row, **time_backends(rewards, k, device, min_time)})
    return rows


def bench_verl(rng, tokens: int = 32) -> dict:
    """verl's grpo_passk against pkpo (its verl estimator, and the bare transform) at k = n."""
    torch = _torch()
    try:
        from verl.trainer.ppo import core_algos
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        return {"skipped": f"verl not importable: {type(error).__name__}: {error}"}
    import pkpo
    from pkpo.integrations.verl import compute_pkpo_advantage

    groups, n = VERL_SHAPE
    scores = rng.random((groups, n), dtype=np.float32)
    bs = groups * n
    token_rewards = torch.zeros(bs, tokens)
    token_rewards[:, -1] = torch.from_numpy(scores.reshape(-1))  # outcome reward on the last token
    mask = torch.ones(bs, tokens)
    uids = np.array([f"uid-{g}" for g in range(groups) for _ in range(n)], dtype=object)
    passk = core_algos.get_adv_estimator_fn("grpo_passk")
    config = _config(
        {
            "norm_adv_by_std_in_grpo": False,
            "pkpo": {"k": n, "baseline": "loo_minus_one", "scale": "none"},
        }
    )

    verl_adv, _ = passk(
        token_level_rewards=token_rewards, response_mask=mask, index=uids, config=config
    )
    ours, _ = compute_pkpo_advantage(token_rewards, mask, index=uids, config=config)
    dense = pkpo.transform(torch.from_numpy(scores), n)
    result = {
        "groups": groups,
        "n": n,
        "k": n,
        "tokens": tokens,
        "max_abs_diff_estimator": float((verl_adv - ours).abs().max()),
        "max_abs_diff_transform": float((verl_adv[:, -1] - dense.reshape(-1)).abs().max()),
    }
    result["verl_s"] = best_time(
        lambda: passk(
            token_level_rewards=token_rewards, response_mask=mask, index=uids, config=config
        ),
        repeats=3,
    )
    result["pkpo_estimator_s"] = best_time(
        lambda: compute_pkpo_advantage(token_rewards, mask, index=uids, config=config)
    )
    x = torch.from_numpy(scores)
    result["pkpo_transform_s"] = best_time(lambda: pkpo.transform(x, n))
    return result


def _config(values: dict):
    try:
        from omegaconf import OmegaConf

        return OmegaConf.create(values)  # what verl passes: config.algorithm as a DictConfig
    except ImportError:
        return values


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- report -----------------------------------------------------------------------------------


def machine_line(device: str) -> str:
    torch = _torch()
    parts = [platform.processor() or platform.machine(), f"{os.cpu_count()} CPUs"]
    if hasattr(os, "getloadavg"):
        parts.append(f"load average {os.getloadavg()[0]:.1f}")
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
        if device == "cuda":
            parts.append(torch.cuda.get_device_name())
    parts.append(f"numpy {np.__version__}")
    return ", ".join(parts)


def _reference_cell(row: dict, key: str) -> str:
    cell = fmt_time(row[f"{key}_s"])
    if row[f"{key}_groups_timed"] < row["groups"]:
        cell += f" ({row[f'{key}_groups_timed']} groups timed)"
    return cell


def shapes_table(rows: list[dict], device: str, references=()) -> str:
    header = ["groups x n", "k", "numpy f32", "torch f32 CPU"]
    header += [reference.title for reference in references] + [
        reference.ratio_title for reference in references
    ]
    if device == "cuda":
        header += ["torch f32 CUDA", "torch.sort CUDA", "CUDA transform / sort"]
    body = []
    for row in rows:
        fastest = _fastest(row)
        quarter = row["k"] == row["n"] // 4 and row["k"] != row["n"]
        cells = [
            f"{row['groups']} x {row['n']}",
            f"{row['k']} ({'n/4' if quarter else 'n'})",
            fmt_time(row["numpy_s"]),
            fmt_time(row.get("torch_cpu_s")),
        ]
        cells += [_reference_cell(row, reference.key) for reference in references]
        cells += [fmt_ratio(row[f"{reference.key}_s"] / fastest) for reference in references]
        if device == "cuda":
            cells += [
                fmt_time(row.get("cuda_s")),
                fmt_time(row.get("cuda_sort_s")),
                fmt_ratio(row["cuda_s"] / row["cuda_sort_s"]) if "cuda_s" in row else "-",
            ]
        body.append(cells)
    return markdown_table(header, body)


def growth_table(rows: list[dict], device: str) -> str:
    header = [
        "groups x n",
        "k",
        "numpy f32",
        "torch f32 CPU",
        "first call (numpy, builds weights)",
        "numpy / n=64",
        "torch / n=64",
    ]
    if device == "cuda":
        header += ["torch f32 CUDA", "torch.sort CUDA", "CUDA / n=64"]
    base = rows[0]

    def relative(row, key):
        return f"{row[key] / base[key]:.2f}" if key in row else "-"

    body = []
    for row in rows:
        cells = [
            f"{row['groups']} x {row['n']}",
            str(row["k"]),
            fmt_time(row["numpy_s"]),
            fmt_time(row.get("torch_cpu_s")),
            fmt_time(row["first_call_s"]),
            relative(row, "numpy_s"),
            relative(row, "torch_cpu_s"),
        ]
        if device == "cuda":
            cells += [
                fmt_time(row.get("cuda_s")),
                fmt_time(row.get("cuda_sort_s")),
                relative(row, "cuda_s"),
            ]
        body.append(cells)
    return markdown_table(header, body)


def verl_table(result: dict) -> str:
    if "skipped" in result:
        return f"verl comparison skipped: {result['skipped']}"
    shape = f"{result['groups']} x {result['n']}, k = n, {result['tokens']} tokens per response"
    entries = [
        ("verl 0.9.1 `grpo_passk` (per-group Python loop)", "verl_s"),
        ("pkpo verl estimator (`adv_estimator=pkpo`, same inputs)", "pkpo_estimator_s"),
        ("`pkpo.transform` on the dense (groups, n) scores", "pkpo_transform_s"),
    ]
    table = markdown_table(
        ["implementation", "time", "verl / this"],
        [
            [label, fmt_time(result[key]), fmt_ratio(result["verl_s"] / result[key])]
            for label, key in entries
        ],
    )
    check = (
        f"Same advantages: max |verl - pkpo estimator| = {result['max_abs_diff_estimator']:.1e}, "
        f"max |verl - pkpo.transform| = {result['max_abs_diff_transform']:.1e} "
        "(loo_minus_one at k = n is TZSM25's max(g) - max(g without i); verl with "
        "norm_adv_by_std_in_grpo=False)."
    )
    return f"{shape}:\n\n{table}\n\n{check}"


def _fastest(row: dict) -> float:
    return min(row["numpy_s"], row.get("torch_cpu_s", math.inf))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pkpo bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, no verl: a few seconds")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: also time the transform and torch.sort on the GPU",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a --json file that exists"
    )
    parser.add_argument("--no-verl", action="store_true", help="skip the verl comparison")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: torch's choice; use 1 on a busy machine)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    return parser


def main(argv=None, references=(), sections=()) -> int:
    """Entry point of ``pkpo bench``; ``references`` adds slower implementations to the first table,
    and each of ``sections`` (results -> markdown) is printed at the end
    (benchmarks/transform.py)."""
    try:
        args = build_parser().parse_args(argv)
        if args.json:
            check_output_path(args.json, overwrite=args.overwrite, what="--json")
    except (UsageError, OutputPathError) as error:
        return fail("pkpo bench", error)
    torch = _torch()
    if args.threads is not None and torch is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and (torch is None or not torch.cuda.is_available()):
        return fail("pkpo bench", "--device cuda needs torch with a CUDA device")
    rng = np.random.default_rng(args.seed)

    results = {"machine": machine_line(args.device), "device": args.device, "quick": args.quick}
    print(f"# pkpo bench{' --quick' if args.quick else ''}\n\n{results['machine']}\n")
    timing = {"min_time": 0.03} if args.quick else {}
    loop_budget = 0.1 if args.quick else 0.5
    shapes = QUICK_SHAPES if args.quick else SHAPES
    results["shapes"] = bench_shapes(shapes, args.device, rng, references, loop_budget, **timing)
    print("## Transform time per call (loo_minus_one, float32 input, best of repeats)\n")
    print(shapes_table(results["shapes"], args.device, references))
    if references:
        worst = max(
            r[f"{reference.key}_max_abs_diff"]
            for r in results["shapes"]
            for reference in references
        )
        print(
            f"\nThe references ({'; '.join(reference.title for reference in references)}) are each "
            f"timed on the first groups for about {loop_budget:g} s and scaled to all groups. "
            f"Their results equal pkpo.transform's to {worst:.0e}. 'pkpo' in a ratio is the faster "
            "of numpy and torch.\n"
        )
    else:
        print()
    results["growth"] = bench_growth(
        QUICK_GROWTH_NS if args.quick else GROWTH_NS, args.device, rng, **timing
    )
    print(f"## Growth: {GROWTH_TOTAL:,} rewards in groups of n, k = n/2\n")
    print(growth_table(results["growth"], args.device))
    if not (args.quick or args.no_verl):
        results["verl"] = bench_verl(rng)
        print("\n## Against verl's grpo_passk (CPU)\n")
        print(verl_table(results["verl"]))
    for section in sections:
        print(f"\n{section(results)}")
    if args.json:
        try:
            write_json(args.json, results, indent=2)
        except OSError as error:
            return fail(
                "pkpo bench", f"could not write --json {args.json!r}: {error.strerror or error}"
            )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
