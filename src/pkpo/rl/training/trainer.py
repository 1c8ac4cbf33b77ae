"""RL for language policies with PKPO: one readable loop, CleanRL order.

Copy-paste::

    pkpo train --task hidden-rule --k 8 --steps 300 --out runs/k8            # from flags
    pkpo train --config my_run.toml --resume                                 # from TOML, continue a run

or from Python::

    from pkpo.rl.training.trainer import TrainConfig, train
    final = train(TrainConfig(k="8->1@200", steps=300, out_dir="runs/anneal"), policy, task)

Every step: draw ``prompts_per_step`` training problems, sample ``n`` completions each, score them,
turn the (B, n) rewards into advantages (the PKPO transform of :func:`pkpo.transform` with k from the
schedule, or one of the baselines below), and minimise the sequence-level policy-gradient loss

    L = -(1 / (B n)) sum_i A_i log p(y_i | x)       (the unbiased form: grad L = -mean_i A_i grad log p(y_i))

optionally with PPO ratio clipping over several epochs, a KL penalty to a reference (warm-start)
policy, and an entropy bonus. Methods (``TrainConfig.method``):

- ``pkpo``: s = pkpo.transform(g, k, baseline) (paper eq. 33 for the default ``loo_minus_one``).
- ``loo``: k = 1 leave-one-out, (g_i - mean_{j!=i} g_j) / n (eq. 26, the paper's k_opt = 1 baseline).
- ``grpo``: (g_i - mean g) / (std g + 1e-6) per group (Shao et al. 2024).
- ``tzsm``: k = n, A_i = max_j g_j - max_{j!=i} g_j (the leave-one-out max-of-n of [TZSM25]; the same
  values as pkpo.transform(g, n, "loo_minus_one")).
- ``entropy``: ``loo`` plus an entropy bonus (the paper's EntropyReg baseline).

``k`` is used by ``pkpo`` only; the other methods fix it (1, or n for ``tzsm``) and log the value used.

Advantage scale (``scale``, :func:`pkpo.transforms.scale_advantages`): ``"mean_abs"`` (the default)
divides the reward advantages of the whole batch by their mean absolute value (when it is non-zero),
so one learning rate serves every k (the raw scale of s shrinks as k grows and pass@k saturates).
This rescales each step's gradient by a positive factor, which changes step sizes but not
directions (and biases the estimate slightly: see :mod:`pkpo.transforms`). ``"n_over_k"`` multiplies
by the constant n/k (unbiased; k = 1 is RLOO) and ``"none"`` keeps the paper's values.

Entropy bonus (``entropy_coef`` > 0): the score-function estimator of the gradient of the sequence
entropy H = E[-log p(y)], added to the (normalised) advantages as
``entropy_coef * (h_i - mean_{j!=i} h_j)`` with h_i = -log p(y_i) (detached). It works for any Policy.

KL penalty (``kl_coef`` > 0): the "k3" estimator exp(r) - r - 1 with r = log p_ref(y) - log p(y),
per sequence, on the sampled completions.

Outputs in ``out_dir``: ``metrics.jsonl`` (first record: the config; then one record per step with
namespaced keys, and ``eval/...`` records), TensorBoard events (``tb/``), ``checkpoint.pt``
(atomic; model, optimizer, every RNG state and the data order) and ``final.json``.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import pkpo
from pkpo.transforms import scale_advantages

from ..._output import atomic_write
from ..config import METHODS, TrainConfig, changed_fields
from ..interfaces import Policy, Task
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state, truncate_metrics
from .evaluation import evaluate, score_samples
from .rundir import open_run

# ---------------------------------------------------------------------------------------------
# library functions of the loop (each unit-tested)


def seed_everything(seed: int, device: str = "cpu") -> torch.Generator:
    """Seed python, numpy and torch; return the explicit generator used for sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + 1_000_003)
    return gen


def learning_rate(lr: float, schedule: str, step: int, steps: int) -> float:
    """The learning rate of ``step``: ``lr`` ("constant"), or cosine decay from lr to lr / 10 ("cosine")."""
    if schedule == "constant" or steps <= 1:
        return lr
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps - 1) / (steps - 1))))


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: (g_i - mean g) / (std g + eps) within each group (population std)."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def leave_one_out_mean(x: torch.Tensor) -> torch.Tensor:
    """mean_{j != i} x_j over the last axis."""
    n = x.shape[-1]
    return (x.sum(-1, keepdim=True) - x) / (n - 1)


def reward_advantages(rewards: torch.Tensor, method: str, k: int, baseline: str) -> torch.Tensor:
    """(B, n) rewards -> (B, n) advantages for one of :data:`METHODS` (before normalisation)."""
    if method == "pkpo":
        return pkpo.transform(rewards, k, baseline=baseline)
    if method in ("loo", "entropy"):
        return pkpo.transform(rewards, 1, baseline="loo_minus_one")  # (g_i - mean_{j!=i} g_j) / n, eq. 26
    if method == "grpo":
        return grpo_advantages(rewards)
    if method == "tzsm":  # max_j g_j - max_{j!=i} g_j: the PKPO transform at k = n
        return pkpo.transform(rewards, rewards.shape[-1], baseline="loo_minus_one")
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def policy_gradient_loss(logp, old_logp, adv, clip_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-mean_i A_i log p(y_i) (clip_eps = 0) or the PPO clipped surrogate; returns (loss, clip fraction).

    With clip_eps = 0 the gradient is exactly -mean_i A_i grad log p(y_i), the unbiased policy gradient
    with transformed rewards (paper eq. 7 with s_i in place of g_i). With clipping, the ratio is
    exp(log p - log p_old) and at ratio 1 (the first epoch) the gradient is the same.
    """
    if clip_eps <= 0:
        return -(adv * logp).mean(), torch.zeros(())
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    clip_frac = ((ratio - 1).abs() > clip_eps).float().mean()
    return -surrogate.mean(), clip_frac


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Mean "k3" KL estimate exp(r) - r - 1, r = log p_ref(y) - log p(y), over sampled sequences."""
    r = ref_logp - logp
    return (torch.exp(r) - r - 1).mean()



class _Batcher:
    """Training problems in shuffled epochs: each problem once per epoch."""

    def __init__(self, num: int, rng: np.random.Generator):
        self.num, self.rng = num, rng
        self.order, self.pos = rng.permutation(num), 0

    def next(self, size: int) -> list[int]:
        out = []
        while len(out) < size:
            if self.pos == self.num:
                self.order, self.pos = self.rng.permutation(self.num), 0
            take = min(size - len(out), self.num - self.pos)
            out.extend(int(i) for i in self.order[self.pos:self.pos + take])
            self.pos += take
        return out


# ---------------------------------------------------------------------------------------------


def train(config: TrainConfig, policy: Policy, task: Task, *, reference: Policy | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Run RL on ``policy`` for ``task``; returns the final metrics (also in ``out_dir/final.json``).

    ``out_dir`` is locked for the run (:mod:`pkpo.rl.training.rundir`): a second process is refused. A folder
    that already holds a run is refused unless ``resume=True`` (continue from its checkpoint.pt,
    which must exist) or ``overwrite=True`` (delete its run files and start again).
    """
    cfg = config.validate()
    with open_run(cfg.out_dir, resume=resume, overwrite=overwrite):
        return _train(cfg, policy, task, reference=reference, resume=resume, progress=progress)


def _train(config: TrainConfig, policy: Policy, task: Task, *, reference: Policy | None = None,
           resume: bool = False, progress: bool = True) -> dict:
    cfg = config.validate()
    if cfg.kl_coef > 0 and reference is None:
        raise ValueError("kl_coef > 0 needs a reference policy (train(..., reference=warm_start_copy))")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    device = torch.device(cfg.device)
    policy.to(device)
    if reference is not None:
        reference.to(device).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
    train_problems = task.problems("train")
    eval_split = task.problems(cfg.eval_split) if cfg.eval_problems else []
    eval_problems = eval_split[: cfg.eval_problems]
    final_problems = eval_split[: cfg.final_eval_problems or cfg.eval_problems]
    if not train_problems:
        raise ValueError(f"task {task.name!r} has no training problems")
    # hard problems (the task's is_hard: for hidden-rule, a rule other than the majority rule)
    hard = np.array([bool(task.is_hard(p)) for p in train_problems]) if hasattr(task, "is_hard") else None
    schedule = cfg.schedule()
    ent_coef = cfg.effective_entropy_coef

    # --- seeding, optimiser, state (TRY NOT TO MODIFY: exact resumption depends on this order)
    gen = seed_everything(cfg.seed, device.type)
    data_rng = np.random.default_rng([cfg.seed, 31337])
    batcher = _Batcher(len(train_problems), data_rng)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    solved = np.zeros(len(train_problems), dtype=bool)  # solved by some sample so far
    seen = np.zeros(len(train_problems), dtype=bool)  # drawn so far
    start_step, last_eval = 0, {}
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        diff = changed_fields(state["config"], cfg.to_dict())
        if diff:
            raise ValueError(f"cannot resume {str(ckpt_path)!r}: config differs in {diff}")
        policy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"], gen, data_rng)
        batcher.order, batcher.pos = np.asarray(state["batcher"]["order"]), int(state["batcher"]["pos"])
        solved = np.asarray(state["solved"], dtype=bool)
        seen = np.asarray(state["seen"], dtype=bool) if "seen" in state else np.ones_like(solved)
        start_step, last_eval = int(state["step"]), state.get("last_eval", {})
        truncate_metrics(metrics_path, start_step)
    else:
        atomic_write(metrics_path, json.dumps({"config": cfg.to_dict(), "task": getattr(task, "name", "?"),
                                               "policy_params": sum(p.numel() for p in policy.parameters())}) + "\n")
    writer = _tensorboard(out / "tb", start_step) if cfg.tensorboard else None
    bs, n = cfg.prompts_per_step, cfg.n
    if progress and start_step == 0:
        print(f"{cfg.run_name()}: {bs} prompts x {n} samples = {bs * n} completions per step, "
              f"k schedule {schedule.describe()}, {cfg.steps} steps")
        if eval_problems:
            every = f"every {cfg.eval_every} steps from step 0 and " if cfg.eval_every else ""
            print(f"held-out evaluation: {len(eval_problems)} problems x {cfg.eval_samples} samples, {every}at the end",
                  flush=True)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_path, {
            "step": step, "model": policy.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": rng_state(gen, data_rng), "batcher": {"order": batcher.order.tolist(), "pos": batcher.pos},
            "solved": solved.tolist(), "seen": seen.tolist(), "config": cfg.to_dict(), "last_eval": last_eval})

    def run_eval(step: int, problems=eval_problems) -> dict:
        detail = problems is not eval_problems  # the final evaluation keeps per-problem counts
        result = evaluate(policy, problems, task, samples=cfg.eval_samples, ks=cfg.eval_ks,
                          max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed * 7919 + step,
                          detail=detail)
        if detail:
            atomic_write(out / "eval_detail.json", json.dumps(result.pop("detail")))
        record = {"step": step, **{f"eval/{key}": v for key, v in result.items()}}
        _log(metrics_path, writer, record)
        return result

    def solve_rates() -> dict:
        """Fraction of the training problems drawn so far that some sample solved (all; hard only)."""
        rates = {"train/cumulative_solve_rate": float(solved[seen].mean()) if seen.any() else 0.0}
        if hard is not None:
            rates["train/hard_solve_rate"] = float(solved[seen & hard].mean()) if (seen & hard).any() else 0.0
        return rates

    t_start = time.time()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc=cfg.run_name()[:40],
               disable=not progress, dynamic_ncols=True)
    for step in bar:
        if cfg.eval_every and eval_problems and step % cfg.eval_every == 0:
            last_eval = run_eval(step)
        t0 = time.time()
        policy.train()
        k = int(schedule(step))
        # --- rollout
        idx = batcher.next(bs)
        problems = [train_problems[i] for i in idx]
        samples = policy.sample([policy.encode(p.prompt) for p in problems], n, cfg.max_new_tokens,
                                cfg.temperature, generator=gen)
        rewards_np = score_samples(task, problems, policy, samples)  # (B, n)
        solved[idx] |= (rewards_np >= 1.0).any(axis=1)
        seen[idx] = True
        rewards = torch.as_tensor(rewards_np, dtype=torch.float32, device=device)
        t_sample = time.time() - t0
        # --- pkpo reward transform
        adv_raw = reward_advantages(rewards, cfg.method, k, cfg.baseline)  # (B, n)
        adv = scale_advantages(adv_raw, k, cfg.scale)
        with torch.no_grad():
            ref_logp = reference.sequence_logprobs(samples).view(bs, n) if cfg.kl_coef > 0 else None
        # --- update
        lr_now = learning_rate(cfg.lr, cfg.lr_schedule, step, cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        for epoch in range(cfg.ppo_epochs):
            logp = policy.sequence_logprobs(samples).view(bs, n)  # (B, n)
            if epoch == 0:  # the sampling policy's log-probs (same weights, so no second forward pass)
                old_logp = logp.detach()
                if ent_coef > 0:
                    h = -old_logp  # (B, n) sampled sequence surprise; E[h] is the sequence entropy
                    adv = adv + ent_coef * (h - leave_one_out_mean(h))
            pg_loss, clip_frac = policy_gradient_loss(logp, old_logp, adv, cfg.clip_eps)
            kl = kl_penalty(logp, ref_logp) if ref_logp is not None else torch.zeros((), device=device)
            loss = pg_loss + cfg.kl_coef * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip or float("inf"))
            optimizer.step()
        # --- logging
        dt = time.time() - t0
        tokens = int(samples.completion_mask.sum())
        record = {
            "step": step, "k": k,
            "reward/mean": float(rewards_np.mean()),
            "reward/pass_at_k": float(np.mean(pkpo.pass_at_k(rewards_np >= 1.0, k))),
            "reward/solved_frac": float((rewards_np >= 1.0).any(axis=1).mean()),
            "adv/mean_abs": float(adv_raw.abs().mean()),
            "adv/zero_signal_frac": float((adv_raw.abs().amax(-1) == 0).float().mean()),
            "loss/policy": float(pg_loss.detach()), "loss/kl": float(kl.detach()), "loss/clip_frac": float(clip_frac),
            "policy/entropy": float((-old_logp).mean()),
            "optim/grad_norm": float(grad_norm), "optim/lr": lr_now,
            **solve_rates(),
            "perf/step_s": dt, "perf/sample_s": t_sample, "perf/samples_per_s": bs * n / dt,
            "perf/tokens_per_s": tokens / max(t_sample, 1e-9),
        }
        _log(metrics_path, writer, record)
        bar.set_postfix(k=k, r=f"{record['reward/mean']:.2f}", solve=f"{record['train/cumulative_solve_rate']:.2f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            checkpoint(step + 1)
    bar.close()

    final_eval = run_eval(cfg.steps, final_problems) if final_problems else {}
    checkpoint(cfg.steps)
    rates = solve_rates()
    final = {"name": cfg.run_name(), "method": cfg.method, "k_schedule": schedule.describe(),
             "baseline": cfg.baseline, "seed": cfg.seed, "steps": cfg.steps,
             "cumulative_solve_rate": rates["train/cumulative_solve_rate"],
             "hard_solve_rate": rates.get("train/hard_solve_rate"), "problems_seen": int(seen.sum()), **final_eval,
             "wall_s_this_session": time.time() - t_start, "config": cfg.to_dict()}
    atomic_write(out / "final.json", json.dumps(final, indent=2))
    if writer is not None:
        writer.close()
    return final


def _tensorboard(logdir: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - TensorBoard is optional
        return None
    return SummaryWriter(str(logdir), purge_step=purge_step or None)


def _log(path: Path, writer, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    if writer is not None:
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, step)
