"""Launch OpenRLHF's PPO with the PKPO patch in every Ray worker.

Usage::

    python -m pkpo.integrations.openrlhf_launch [--pkpo.method M] \\
        [--pkpo.k K | --pkpo.schedule S] [--pkpo.baseline B] \\
        [--pkpo.scale none|n_over_k|mean_abs] [--pkpo.params P] <openrlhf.cli.train_ppo_ray
        arguments>

Runs OpenRLHF's ``openrlhf.cli.train_ppo_ray`` with :func:`pkpo.integrations.openrlhf.patch`
applied in every Ray worker process:

1. strips the ``--pkpo.*`` flags (OpenRLHF's argparse would reject them) and validates them, with
   ``--rollout.n_samples_per_prompt`` (OpenRLHF's default is 1, too few for any PKPO k);
2. sets OpenRLHF flags that PKPO needs, unless given (:func:`with_pkpo_defaults`):
   ``--algo.advantage.estimator reinforce`` (another estimator is an error: it would reshape the
   PKPO rewards again), ``--algo.advantage.no_std_norm``, and ``--algo.kl.init_coef 0`` unless a
   KL coefficient or ``--algo.kl.use_loss`` is given (OpenRLHF's default 0.01 puts a KL penalty
   into the reward, untransformed, next to the PKPO values);
3. puts the PKPO options into their environment variables (``PKPO_METHOD``, ``PKPO_K``, ...:
   :data:`pkpo.integrations.openrlhf.ENV_VARS`) and calls ``ray.init`` with
   ``runtime_env={"worker_process_setup_hook":
   "pkpo.integrations.openrlhf.patch", "env_vars": {...}}``, the env vars also carrying
   OpenRLHF's own defaults (``TOKENIZERS_PARALLELISM``, ``NCCL_DEBUG``,
   ``RAY_ENABLE_ZERO_COPY_TORCH_TENSORS``), because ``train()`` skips its own ``ray.init`` when
   Ray is already up;
4. runs ``openrlhf.cli.train_ppo_ray`` as ``__main__`` with the remaining arguments.

For ``ray job submit`` put the same hook and variables into ``--runtime-env-json`` instead.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys

from .._cli import fail
from ._common import DEFAULT_SCALE, as_int, check_samples_per_prompt

PROG = "pkpo.integrations.openrlhf_launch"
ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"
SETUP_HOOK = "pkpo.integrations.openrlhf.patch"
PKPO_FLAGS = {
    "--pkpo.method": "PKPO_METHOD",
    "--pkpo.k": "PKPO_K",
    "--pkpo.schedule": "PKPO_SCHEDULE",
    "--pkpo.baseline": "PKPO_BASELINE",
    "--pkpo.scale": "PKPO_SCALE",
    "--pkpo.params": "PKPO_PARAMS",
}
ESTIMATOR_FLAG = "--algo.advantage.estimator"
NO_STD_NORM_FLAG = "--algo.advantage.no_std_norm"
KL_COEF_FLAG = "--algo.kl.init_coef"
KL_LOSS_FLAG = "--algo.kl.use_loss"
LOSS_AGG_FLAG = "--actor.loss_agg_mode"
N_SAMPLES_FLAG = "--rollout.n_samples_per_prompt"
OPENRLHF_DEFAULT_N_SAMPLES = 1
# OpenRLHF imports these at module level; flash-attn, deepspeed and vllm need CUDA builds.
REQUIRED_MODULES = ("openrlhf", "flash_attn", "deepspeed", "vllm")
OPENRLHF_DEFAULT_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}

HELP = f"""\
usage: python -m pkpo.integrations.openrlhf_launch [--pkpo.method M]
           [--pkpo.k K | --pkpo.schedule S] [--pkpo.baseline B] [--pkpo.scale SCALE]
           [--pkpo.params P] [OpenRLHF train_ppo_ray arguments ...]

Run OpenRLHF's PPO (openrlhf.cli.train_ppo_ray) on PKPO transformed rewards: the PKPO patch is
installed in every Ray worker through a runtime_env worker_process_setup_hook.

PKPO flags (also --flag=value):
  --pkpo.method M        the advantage estimator, by name: pkpo (default), grpo, dr_grpo,
                         rloo, maxrl, tailrl, rs_grpo, w_reinforce, tzsm, passk_training, ...
  --pkpo.k K             optimise pass@k (maxg@k for real rewards) at this k (methods with k)
  --pkpo.schedule S      a k schedule instead of a constant k, over OpenRLHF's global_step,
                         e.g. "8->1@150" or "linear:8->1@0+300"
  --pkpo.baseline B      PKPO's: loo_minus_one (default; the paper's PKPO), loo, centered, none
  --pkpo.params P        the method's other parameters, e.g. beta=2.0 (rs_grpo)
  --pkpo.scale SCALE     none (the paper's values), n_over_k or mean_abs (mean |A| = 1 over the
                         rollout batch of one advantage computation; slightly biased);
                         default: {DEFAULT_SCALE}
  -h, --help             show this help and exit

Every other argument passes through to openrlhf.cli.train_ppo_ray unchanged; see
  python -m openrlhf.cli.train_ppo_ray --help
The launcher adds, unless given:
  --algo.advantage.estimator reinforce   (another estimator is an error: it would reshape the
                                          PKPO rewards again)
  --algo.advantage.no_std_norm
  --algo.kl.init_coef 0                  (unless --algo.kl.init_coef or --algo.kl.use_loss is
                                          given: KL-in-reward would add an untransformed KL
                                          penalty to the PKPO rewards; use --algo.kl.use_loss
                                          for a KL term)
--rollout.n_samples_per_prompt (OpenRLHF's default 1) must be large enough for k.
Keep --actor.loss_agg_mode token-mean (the default); see docs/integrations.md.
"""


def split_argv(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``--pkpo.*`` flags (``--flag value`` / ``--flag=value``) from OpenRLHF's arguments."""
    pkpo_env: dict[str, str] = {}
    rest: list[str] = []
    position = 0
    while position < len(argv):
        item = argv[position]
        name, equals, value = item.partition("=")
        if name.startswith("--pkpo."):
            if name not in PKPO_FLAGS:
                raise ValueError(f"unknown flag {name}; expected one of {', '.join(PKPO_FLAGS)}.")
            if not equals:
                if position + 1 >= len(argv):
                    raise ValueError(f"{name} needs a value.")
                position += 1
                value = argv[position]
            pkpo_env[PKPO_FLAGS[name]] = value
        else:
            rest.append(item)
        position += 1
    return pkpo_env, rest


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag value`` or ``--flag=value``; the last wins)."""
    found = None
    for position, item in enumerate(args):
        name, equals, value = item.partition("=")
        if name == flag:
            if equals:
                found = value
            else:
                found = args[position + 1] if position + 1 < len(args) else ""
    return found


def has_flag(args: list[str], flag: str) -> bool:
    return any(item.partition("=")[0] == flag for item in args)


def with_pkpo_defaults(rest: list[str]) -> tuple[list[str], list[str]]:
    """OpenRLHF arguments with what PKPO needs added; returns ``(arguments, notes to print)``.

    Raises ValueError for an estimator other than ``reinforce``.
    """
    rest, notes = list(rest), []
    estimator = flag_value(rest, ESTIMATOR_FLAG)
    if estimator is None:
        rest += [ESTIMATOR_FLAG, "reinforce"]
    elif estimator != "reinforce":
        raise ValueError(
            f"{ESTIMATOR_FLAG} {estimator!r} would reshape the PKPO rewards again; use "
            "'reinforce' (or leave it out: the launcher sets it)."
        )
    if not has_flag(rest, NO_STD_NORM_FLAG):
        rest.append(NO_STD_NORM_FLAG)
    kl_coef = flag_value(rest, KL_COEF_FLAG)
    if has_flag(rest, KL_LOSS_FLAG):
        pass  # KL as a loss term: the reward stays the PKPO reward
    elif kl_coef is None:
        rest += [KL_COEF_FLAG, "0"]
        notes.append(
            f"{KL_COEF_FLAG} 0: KL-in-reward is off (OpenRLHF's default 0.01 would add an "
            f"untransformed KL penalty to the PKPO rewards); for a KL term use {KL_LOSS_FLAG} "
            f"[{KL_COEF_FLAG} C]."
        )
    elif _positive(kl_coef):
        notes.append(
            f"{KL_COEF_FLAG} {kl_coef} without {KL_LOSS_FLAG}: OpenRLHF adds the per-token KL "
            "penalty to the PKPO rewards after the transform (the KL term is not transformed)."
        )
    if flag_value(rest, LOSS_AGG_FLAG) not in (None, "token-mean"):
        notes.append(
            f"{LOSS_AGG_FLAG} {flag_value(rest, LOSS_AGG_FLAG)} divides each sequence's loss by "
            "its length, which reweights the PKPO gradient by 1/length; token-mean (the default) "
            "keeps the sequence-level estimate up to one factor per batch."
        )
    return rest, notes


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False  # OpenRLHF's argparse reports it


def runtime_env(pkpo_env: dict[str, str], environ=None) -> dict:
    """Ray ``runtime_env``: the setup hook, OpenRLHF's default env vars and the PKPO options."""
    environ = os.environ if environ is None else environ
    env_vars = {name: environ.get(name, default) for name, default in OPENRLHF_DEFAULT_ENV.items()}
    env_vars.update(pkpo_env)
    return {"worker_process_setup_hook": SETUP_HOOK, "env_vars": env_vars}


def missing_modules() -> list[str]:
    """The modules OpenRLHF needs at import time that this Python cannot find."""
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(HELP, end="")
        return 0
    from . import openrlhf as adapter

    try:
        pkpo_env, rest = split_argv(argv)
        options = adapter.options_from_env(pkpo_env, source="--pkpo flags")
        n_samples = flag_value(rest, N_SAMPLES_FLAG) or str(OPENRLHF_DEFAULT_N_SAMPLES)
        n_samples = as_int(n_samples, N_SAMPLES_FLAG, minimum=1)
        check_samples_per_prompt(n_samples, options, source="--pkpo flags", name=N_SAMPLES_FLAG)
        rest, notes = with_pkpo_defaults(rest)
    except ValueError as error:
        return fail(PROG, error)
    missing = missing_modules()
    if missing:
        return fail(
            PROG,
            f"OpenRLHF cannot be imported here (missing: {', '.join(missing)}); install it on a "
            "CUDA machine: pip install 'openrlhf[vllm]==0.11.2' (docs/integrations.md).",
        )
    print(f"{PROG}: PKPO {options.describe()}", file=sys.stderr)
    for note in notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)

    os.environ.update(pkpo_env)
    import ray

    if ray.is_initialized():
        print(
            f"{PROG}: warning: Ray was already initialised here; its workers get "
            f"the PKPO patch only with runtime_env worker_process_setup_hook={SETUP_HOOK!r}.",
            file=sys.stderr,
        )
    else:
        ray.init(runtime_env=runtime_env(pkpo_env))
    adapter.patch()  # the driver process too
    sys.argv = [ENTRY_MODULE, *rest]
    runpy.run_module(ENTRY_MODULE, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
