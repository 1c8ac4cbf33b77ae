"""Launch OpenRLHF's PPO with the PKPO patch in every Ray worker.

Usage::

    python -m pkpo.launch.openrlhf [--pkpo.k K | --pkpo.schedule S] [--pkpo.baseline B] \\
        <openrlhf.cli.train_ppo_ray arguments>

Runs OpenRLHF's ``openrlhf.cli.train_ppo_ray`` with :func:`pkpo.integrations.openrlhf.patch`
applied in every Ray worker process:

1. strips the ``--pkpo.*`` flags (OpenRLHF's argparse would reject them) and validates them;
2. puts them into ``PKPO_K`` / ``PKPO_SCHEDULE`` / ``PKPO_BASELINE`` and calls ``ray.init`` with
   ``runtime_env={"worker_process_setup_hook": "pkpo.integrations.openrlhf.patch", "env_vars":
   {...}}``, the env vars also carrying OpenRLHF's own defaults (``TOKENIZERS_PARALLELISM``,
   ``NCCL_DEBUG``, ``RAY_ENABLE_ZERO_COPY_TORCH_TENSORS``), because ``train()`` skips its own
   ``ray.init`` when Ray is already up;
3. adds ``--algo.advantage.estimator reinforce`` and ``--algo.advantage.no_std_norm`` unless given
   (another estimator is an error: it would reshape the PKPO rewards again);
4. runs ``openrlhf.cli.train_ppo_ray`` as ``__main__`` with the remaining arguments.

For ``ray job submit`` put the same hook and variables into ``--runtime-env-json`` instead.
"""

from __future__ import annotations

import os
import runpy
import sys

from pkpo.integrations._common import parse_options

ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"
SETUP_HOOK = "pkpo.integrations.openrlhf.patch"
PKPO_FLAGS = {
    "--pkpo.k": "PKPO_K",
    "--pkpo.schedule": "PKPO_SCHEDULE",
    "--pkpo.baseline": "PKPO_BASELINE",
}
ESTIMATOR_FLAG = "--algo.advantage.estimator"
NO_STD_NORM_FLAG = "--algo.advantage.no_std_norm"
OPENRLHF_DEFAULT_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


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


def with_reinforce_estimator(rest: list[str]) -> list[str]:
    """OpenRLHF arguments with the estimator forced to ``reinforce`` and std scaling off."""
    rest = list(rest)
    for position, item in enumerate(rest):
        name, equals, value = item.partition("=")
        if name == ESTIMATOR_FLAG:
            if not equals:
                value = rest[position + 1] if position + 1 < len(rest) else ""
            if value != "reinforce":
                raise ValueError(
                    f"{ESTIMATOR_FLAG} {value!r} would reshape the PKPO rewards again; use "
                    "'reinforce' (or leave it out: the launcher sets it)."
                )
            break
    else:
        rest += [ESTIMATOR_FLAG, "reinforce"]
    if NO_STD_NORM_FLAG not in rest:
        rest.append(NO_STD_NORM_FLAG)
    return rest


def runtime_env(pkpo_env: dict[str, str], environ=None) -> dict:
    """Ray ``runtime_env``: the setup hook, OpenRLHF's default env vars and the PKPO options."""
    environ = os.environ if environ is None else environ
    env_vars = {name: environ.get(name, default) for name, default in OPENRLHF_DEFAULT_ENV.items()}
    env_vars.update(pkpo_env)
    return {"worker_process_setup_hook": SETUP_HOOK, "env_vars": env_vars}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        pkpo_env, rest = split_argv(argv)
        parse_options(
            k=pkpo_env.get("PKPO_K"),
            schedule=pkpo_env.get("PKPO_SCHEDULE"),
            baseline=pkpo_env.get("PKPO_BASELINE"),
            source="pkpo.launch.openrlhf",
        )
        rest = with_reinforce_estimator(rest)
    except ValueError as error:
        print(f"pkpo.launch.openrlhf: error: {error}", file=sys.stderr)
        return 2

    os.environ.update(pkpo_env)
    import ray

    from pkpo.integrations import openrlhf as adapter

    if ray.is_initialized():
        print(
            "pkpo.launch.openrlhf: warning: Ray was already initialised here; its workers get "
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
