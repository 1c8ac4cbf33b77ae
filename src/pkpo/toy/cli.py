"""``pkpo toy``: reproduce the paper's toy study (Figures 1, 2, 4, 5) plus toy training runs.

    pkpo toy --out runs/toy            # full study, under a minute of CPU on 2 cores
    pkpo toy --out runs/toy --quick    # reduced sizes, a few seconds (used by the tests)

Writes into --out: fig1_landscape.png, fig2_weights.png, fig4_variance.png,
fig5_transformed.png, toy_training.png, toy.json (every number behind the figures) and
report.md. Deterministic for a given --seed. An interrupted run resumes from
--out/.toy_checkpoint.json when rerun with the same settings (--fresh ignores it). Outputs that
exist already are replaced only with --overwrite; no file is written through a symbolic link.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .._cli import Parser, UsageError, fail, non_negative_int
from .._output import OutputPathError, atomic_write, check_output_path, write_json

__all__ = ["main"]

CHECKPOINT = ".toy_checkpoint.json"
PROG = "pkpo toy"
# what a run writes into --out (the figures' names are also pkpo.toy.figures.FIGURES, which imports
# matplotlib; the test checks the two lists agree)
OUTPUTS = (
    "toy.json",
    "report.md",
    "fig1_landscape.png",
    "fig2_weights.png",
    "fig4_variance.png",
    "fig5_transformed.png",
    "toy_training.png",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG, description="Reproduce the PKPO paper's toy study (Sec. 5.1, App. C)."
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier run in --out"
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes for a smoke test (a few seconds)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--fresh", action="store_true", help="ignore a checkpoint left by an interrupted run"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _prepare_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create --out folder {out!r}: {error.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out folder {out!r} is not writable")
    for name in OUTPUTS:
        try:
            check_output_path(os.path.join(out, name), overwrite=overwrite)
        except OutputPathError as error:
            raise UsageError(str(error)) from None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _prepare_out(args.out, args.overwrite)
    except UsageError as error:
        return fail(PROG, error)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)

    from .figures import write_figures  # heavy imports only once the arguments are valid
    from .report import render_report
    from .study import StudyConfig, run_study

    start = time.perf_counter()
    config = StudyConfig.quick() if args.quick else StudyConfig.full()
    checkpoint = os.path.join(args.out, CHECKPOINT)
    if args.fresh and os.path.exists(checkpoint):
        os.remove(checkpoint)
    result = run_study(config, args.seed, checkpoint=checkpoint, progress=not args.no_progress)
    result["quick"] = bool(args.quick)
    try:
        write_json(os.path.join(args.out, "toy.json"), result, indent=1)
        write_figures(result, args.out)
        atomic_write(
            os.path.join(args.out, "report.md"),
            render_report(result, figures=".", quick=args.quick),
        )
    except OSError as error:
        return fail(PROG, f"could not write output: {error}")
    os.remove(checkpoint)
    stars = ", ".join(f"k={k}: {v:.3f}" for k, v in result["theta_star"].items())
    print(f"theta*(k): {stars}")
    print(
        f"wrote toy.json, report.md and 5 figures to {args.out} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
