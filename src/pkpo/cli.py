"""The ``pkpo`` command (also ``python -m pkpo``): one subcommand per job, each in the module that
owns it.

Subcommands are imported only when used, so ``pkpo --help`` and ``pkpo eval`` stay fast and do
not import torch; ``pkpo COMMAND --help`` works without the command's extras. Each entry point takes
the remaining argv and returns an exit code: 0 on success, 2 for a bad argument or input (one line
``pkpo <cmd>: error: ...`` on stderr), 130 after Ctrl-C. A subcommand whose optional dependencies
are missing names the extra to install; when the reader of the output goes away (``pkpo eval ... |
head -1``) the command ends quietly.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from ._cli import EXTRAS, fail, missing_extra

# name -> (module, function, one-line help, modules it needs beyond numpy, the extra that has them)
COMMANDS = {
    "demo": (
        "pkpo.rl.cli",
        "demo_main",
        "train a small policy: pass@1 baseline vs PKPO, with a report",
        ("torch", "tqdm", "matplotlib"),
        "rl",
    ),
    "train": (
        "pkpo.rl.cli",
        "train_main",
        "one RL run from flags or a TOML config (checkpoints, --resume)",
        ("torch", "tqdm"),
        "rl",
    ),
    "sweep": (
        "pkpo.rl.cli",
        "sweep_main",
        "a grid of RL runs over k, schedules, baselines and seeds",
        ("torch", "tqdm", "matplotlib"),
        "rl",
    ),
    "toy": (
        "pkpo.toy.cli",
        "main",
        "reproduce the paper's toy study (figures 1, 2, 4, 5 and toy training)",
        ("scipy", "tqdm", "matplotlib"),
        "toy",
    ),
    "eval": (
        "pkpo.commands.eval",
        "main",
        "pass@k, pass^k, maxg@k and Cover@tau with confidence intervals from graded samples",
        (),
        None,
    ),
    "bench": (
        "pkpo.commands.bench",
        "main",
        "time the reward transform, also against verl's grpo_passk",
        (),
        None,
    ),
}


def _usage() -> str:
    lines = [
        "usage: pkpo COMMAND [options]",
        "",
        "Pass@K Policy Optimization toolkit.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<7} {help_}" for name, (_, _, help_, _, _) in COMMANDS.items()]
    lines += ["", "Run 'pkpo COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def _wants_help(argv) -> bool:
    """``-h`` / ``--help`` among the arguments (before a ``--``): help needs no optional extra."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return any(word in ("-h", "--help") for word in words)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
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
    module_name, function_name, _, needs, extra = COMMANDS[name]
    missing = None if _wants_help(rest) else missing_extra(needs, extra)
    if missing:
        return fail(f"pkpo {name}", missing)
    try:
        entry = getattr(importlib.import_module(module_name), function_name)
        code = int(entry(rest) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("pkpo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``pkpo eval ... | head -1``): stop quietly, like any Unix tool
        # killed by SIGPIPE. Point stdout at devnull so the exit-time flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as error:
        top = (error.name or "").partition(".")[0]
        if top not in EXTRAS or importlib.util.find_spec(top) is not None:
            raise
        return fail(f"pkpo {name}", missing_extra([top]))


if __name__ == "__main__":
    sys.exit(main())
