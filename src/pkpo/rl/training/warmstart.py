"""Supervised warm start before RL, cached on disk so that sweeps do not redo it.

PKPO can only spread probability over strategies that sometimes succeed (docs/results.md), so the
warm-started policy must execute every rule correctly at least occasionally. The warm start is plain
maximum likelihood on the task's demonstrations (``task.warmstart_batch``): loss = -mean log p(y |
x), with the same ``sequence_logprobs`` the RL loss uses. ``rule_accuracy`` checks the result.

The cache key hashes the policy config, the task's demonstrator (``task.warmstart_spec()``: string
length, plan character, the rule prior and its power), the number of steps, batch size, learning
rate and seed; the file is written atomically (tmp + rename).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..._output import atomic_write
from .. import seeding
from ..interfaces import Samples

WARMSTART_VERSION = 2  # 2: the key hashes the task's demonstrator (warmstart_spec)


def default_cache_dir() -> Path:
    return Path(os.environ.get("PKPO_CACHE", Path.home() / ".cache" / "pkpo")) / "warmstart"


def teacher_samples(policy, pairs: list[tuple[str, str]]) -> Samples:
    """Demonstrations as a Samples batch (n = 1) so ``policy.sequence_logprobs`` scores them."""
    if not hasattr(policy, "encode_completion"):
        raise ValueError(
            f"{type(policy).__name__} has no encode_completion(); it cannot be warm-started here"
        )
    prompts = [policy.encode(p) for p, _ in pairs]
    comps = [policy.encode_completion(c) for _, c in pairs]
    T = max(len(c) for c in comps)
    ids = torch.zeros((len(comps), T), dtype=torch.long)
    mask = torch.zeros((len(comps), T), dtype=torch.bool)
    for row, c in enumerate(comps):
        ids[row, : len(c)] = torch.as_tensor(c)
        mask[row, : len(c)] = True
    return Samples(prompt_ids=prompts, completion_ids=ids, completion_mask=mask, n=1)


def cache_key(policy, task, steps: int, batch: int, lr: float, seed: int) -> str:
    demos = (
        task.warmstart_spec()
        if hasattr(task, "warmstart_spec")
        else {"length": task.config.length, "plan": getattr(task.config, "plan", False)}
    )
    spec = {
        "version": WARMSTART_VERSION,
        "policy": policy.config_dict(),
        "demonstrations": demos,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def warm_start(
    policy,
    task,
    *,
    steps: int = 1200,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_step=None,
) -> dict:
    """Fit ``policy`` to the task's demonstrations for ``steps`` AdamW steps (cosine lr decay to 10
    %).

    Loads the cached weights instead when a warm start with the same key exists. ``on_step(done,
    total)`` is called after every step (progress reporting from worker processes). Returns
    ``{"cached": bool, "path": str, "final_nll": float | None, "wall_s": float, "cpu_s": float}``
    (the wall and CPU seconds the fit took when it ran, as stored next to the weights).
    """
    if steps < 0 or batch < 1 or not lr > 0:
        raise ValueError(
            f"warm start needs steps >= 0, batch >= 1, lr > 0; got {steps}, {batch}, {lr}"
        )
    if steps == 0:
        return {"cached": False, "path": None, "final_nll": None}
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"warmstart-{cache_key(policy, task, steps, batch, lr, seed)}.pt"
    if path.exists():
        initial = {name: value.detach().clone() for name, value in policy.state_dict().items()}
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            policy.load_state_dict(state["model"])
            return {
                "cached": True,
                "path": str(path),
                "final_nll": state.get("final_nll"),
                "wall_s": state.get("wall_s"),
                "cpu_s": state.get("cpu_s"),
            }
        except (
            Exception
        ):  # a broken cache file (meta tensors, wrong shapes, ...) is rebuilt, not trusted:
            policy.load_state_dict(
                initial
            )  # the fit starts from the initial weights, not a half-loaded state
            path.unlink(missing_ok=True)
    rng = seeding.stream(seed, "warm_start")
    seeding.seed_globals(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps))
    )
    policy.train()
    nll, t0, c0 = float("nan"), time.time(), time.process_time()
    bar = tqdm(range(steps), desc="warm start", disable=not progress, leave=False)
    for step in bar:
        samples = teacher_samples(policy, task.warmstart_batch(rng, batch))
        loss = -policy.sequence_logprobs(samples).mean()  # -mean log p(y | x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        sched.step()
        nll = 0.98 * nll + 0.02 * loss.item() if nll == nll else loss.item()
        bar.set_postfix(nll=f"{nll:.3f}")
        if on_step is not None:
            on_step(step + 1, steps)
    wall, cpu = time.time() - t0, time.process_time() - c0
    cache.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"model": policy.state_dict(), "final_nll": nll, "wall_s": wall, "cpu_s": cpu}, buf)
    atomic_write(path, buf.getvalue())
    return {"cached": False, "path": str(path), "final_nll": nll, "wall_s": wall, "cpu_s": cpu}


@torch.no_grad()
def rule_accuracy(
    policy, task, *, per_rule: int = 32, samples: int = 4, max_new_tokens: int = 16, seed: int = 0
) -> dict[str, float]:
    """Fraction of sampled completions that execute each named rule correctly (easy-tier
    prompts)."""
    rng = seeding.stream(seed, "rule_accuracy")
    gen = seeding.torch_stream(seed, "rule_accuracy", next(iter(policy.parameters())).device)
    out = {}
    for rule, probs in task.rule_accuracy_problems(rng, per_rule).items():
        s = policy.sample(
            [policy.encode(p.prompt) for p in probs], samples, max_new_tokens, 1.0, generator=gen
        )
        texts = [policy.decode(r[m].tolist()) for r, m in zip(s.completion_ids, s.completion_mask)]
        out[rule] = float(
            np.mean(
                [
                    task.score(probs[j], texts[j * samples + i]) >= 1.0
                    for j in range(len(probs))
                    for i in range(samples)
                ]
            )
        )
    return out
