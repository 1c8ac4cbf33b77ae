"""The ``pkpo`` command: one subcommand per job, each implemented in the module that owns it.

Subcommands are imported only when used, so ``pkpo --help`` and ``pkpo eval`` stay fast and do
not import torch. Each entry point takes the remaining argv and returns an exit code.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line help)
COMMANDS = {
    "demo": ("pkpo.rl.cli", "demo_main", "train a small policy: pass@1 baseline vs PKPO, with a report"),
    "train": ("pkpo.rl.cli", "train_main", "one RL run from flags or a TOML config (checkpoints, --resume)"),
    "sweep": ("pkpo.rl.cli", "sweep_main", "a grid of RL runs over k, schedules, baselines and seeds"),
    "toy": ("pkpo.toy.cli", "main", "reproduce the paper's toy study (figures 1, 2, 4, 5 and toy training)"),
    "eval": ("pkpo.evaluate", "main", "unbiased pass@k / maxg@k with confidence intervals from a JSONL file"),
    "bench": ("pkpo.bench", "main", "time the reward transform against reference implementations"),
}


def _usage() -> str:
    lines = ["usage: pkpo COMMAND [options]", "", "Pass@K Policy Optimization toolkit.", "", "commands:"]
    lines += [f"  {name:<7} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run 'pkpo COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from . import __version__

        print(f"pkpo {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"pkpo: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    entry = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(entry(rest) or 0)
    except KeyboardInterrupt:
        print("pkpo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
