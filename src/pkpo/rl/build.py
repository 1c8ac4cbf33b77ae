"""The policy, task and optional KL reference of a :class:`~pkpo.rl.config.TrainConfig`.

::

    # from-scratch GPT, warm-started
    policy, task, reference, info = build(cfg, cache_dir="runs/cache")
    # HF model, nl: task
    policy, task, reference, _ = build_pretrained(cfg, "smollm2-135m", lora_r=8)

``pkpo train``, the grid of ``pkpo sweep``/``pkpo demo`` and tools/diagnose.py make their runs here.
torch and the policies are imported only when a builder is called.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from .._output import write_json
from . import seeding
from .config import TrainConfig


def build_pretrained(cfg: TrainConfig, model: str, lora_r: int):
    """A pretrained Hugging Face policy (optionally LoRA) and the ``nl:`` task of ``cfg``."""
    import torch

    from .policies.pretrained import load_pretrained
    from .tasks.nl_tasks import nl_task_from_name

    if not cfg.task.startswith("nl:"):
        raise ValueError(
            "--model trains on natural-language tasks: use --task nl:arithmetic-d1 (got "
            f"{cfg.task!r})"
        )
    torch.set_num_threads(cfg.threads)
    task = nl_task_from_name(
        cfg.task, n_train=cfg.n_train, n_heldout=cfg.n_heldout, seed=cfg.task_seed
    )
    lora = {"r": lora_r, "alpha": 2 * lora_r} if lora_r else None
    policy = load_pretrained(model, lora=lora, device=cfg.device)
    reference = copy.deepcopy(policy) if cfg.kl_coef > 0 else None
    return policy, task, reference, {}


def task_options(cfg: TrainConfig) -> dict:
    """The keyword arguments of ``make_task(cfg.task, ...)``: the config fields that task reads."""
    common = {
        "seed": cfg.task_seed,
        "n_train": cfg.n_train,
        "n_heldout": cfg.n_heldout,
        "n_validation": cfg.n_validation,
    }
    if cfg.task.startswith("maze"):
        return {**common, "size": cfg.maze_size}
    return {
        **common,
        "tier": cfg.tier,
        "feature": cfg.feature,
        "length": cfg.length,
        "demo_power": cfg.demo_power,
        "demo_uniform": cfg.demo_uniform,
        "majority_share": cfg.majority_share,
    }


def build(cfg: TrainConfig, *, cache_dir=None, progress: bool = True, on_warm_step=None):
    """The GPT policy (warm-started, cached), the task and the optional KL reference for ``cfg``."""
    import torch

    from .policies.gpt import GPT, GPTConfig
    from .tasks import make_task
    from .training.warmstart import rule_accuracy, warm_start

    if cfg.task.startswith("nl:"):
        raise ValueError(
            f"task {cfg.task!r} needs a pretrained policy: add --model smollm2-135m (or a local "
            "path)"
        )
    torch.set_num_threads(cfg.threads)
    task = make_task(cfg.task, **task_options(cfg))
    seeding.seed_globals(cfg.seed)  # model initialisation
    shape = {"d_model": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head}
    if hasattr(
        task, "prompt_length"
    ):  # a task with long prompts and answers says how long (the maze)
        shape["block_size"] = (
            task.prompt_length() + 1 + max(cfg.max_new_tokens, task.max_new_tokens())
        )
    policy = GPT(GPTConfig(**shape)).to(cfg.device)
    info = warm_start(
        policy,
        task,
        steps=cfg.warm_steps,
        batch=cfg.warm_batch,
        lr=cfg.warm_lr,
        seed=cfg.seed,
        cache_dir=cache_dir,
        progress=progress,
        on_step=on_warm_step,
    )
    if not info["cached"] and cfg.warm_steps and hasattr(task, "rule_accuracy_problems"):
        info["rule_accuracy"] = rule_accuracy(
            policy, task, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed
        )
        write_json(Path(info["path"]).with_suffix(".json"), info, indent=2)
    elif (
        info["cached"] and Path(info["path"]).with_suffix(".json").exists()
    ):  # what the fit measured
        stored = json.loads(Path(info["path"]).with_suffix(".json").read_text())
        info = {**stored, **{k: v for k, v in info.items() if v is not None}}
    reference = copy.deepcopy(policy) if cfg.kl_coef > 0 else None
    return policy, task, reference, info
