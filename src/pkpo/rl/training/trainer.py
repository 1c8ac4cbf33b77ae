"""RL for language policies with PKPO: one readable loop, CleanRL order.

Copy-paste::

    pkpo train --task hidden-rule --k 8 --steps 300 --out runs/k8  # from flags
    pkpo train --config my_run.toml --resume                       # from TOML, continue a run

or from Python::

    from pkpo.rl.training.trainer import TrainConfig, train
    final = train(TrainConfig(k="8->1@200", steps=300, out_dir="runs/anneal"), policy, task)

Every step: draw ``prompts_per_step`` training problems, sample ``n`` completions each, score them,
turn the (B, n) rewards into advantages with the estimator ``TrainConfig.method`` of
:mod:`pkpo.advantages` (``"pkpo"``: pkpo.transform(g, k, baseline), paper eq. 33 for the default
``loo_minus_one``; ``"grpo"``, ``"rloo"``, ``"maxrl"``, ``"tzsm"``, ... : see
``pkpo.advantages.names()``), and minimise the sequence-level policy-gradient loss

    L = -(1 / (B n)) sum_i A_i log p(y_i | x)       (the unbiased form: grad L = -mean_i A_i grad
    log p(y_i))

optionally with PPO ratio clipping over several epochs, a KL penalty to a reference (warm-start)
policy, and an entropy bonus (any method). ``k`` (a schedule) applies to the methods that take k
(``pkpo.advantages.spec(name).takes_k``); the others need k "1" and the trainer logs the k they
target (n for ``"tzsm"``, the max-of-n; 1 for the rest). The estimator's own parameters (``beta`` of
``"rs_grpo"``, ``lam`` of ``"w_reinforce"``, ``eps`` of ``"grpo"``) are ``method_params``. The first
trainer's ``"loo"`` is ``"pkpo"`` with k = 1, its ``"entropy"`` is that plus ``entropy_coef`` 0.05.

Shaping (before the scale): ``max_group_success`` < 1 is a difficulty filter, the advantages of a
prompt whose fraction of correct samples exceeds it become 0 (a solved prompt gets no update);
``positive_only`` keeps max(A, 0). Both bias the update away from the method's objective on purpose
(ablations of issue 18).

Evaluation (:func:`pkpo.rl.training.evaluation.evaluate`) samples at ``eval_temperature``, not at
the training ``temperature``, and reports near-greedy pass@1 (``greedy_temperature``) beside pass@k.

Advantage scale (``scale``, :func:`pkpo.transforms.scale_advantages`): ``"mean_abs"`` (the default)
divides the reward advantages of the whole batch by their mean absolute value (when it is non-zero),
so one learning rate serves every k (the raw scale of s shrinks as k grows and pass@k saturates).
This rescales each step's gradient by a positive factor, which changes step sizes but not
directions (and biases the estimate slightly: see :mod:`pkpo.transforms`). ``"n_over_k"`` multiplies
by the constant n/k (unbiased; k = 1 is RLOO) and ``"none"`` keeps the paper's values.

Entropy bonus (``entropy_coef`` > 0): the score-function estimator of the gradient of the sequence
entropy H = E[-log p(y)], added to the (normalised) advantages as
``entropy_coef * (h_i - mean_{j!=i} h_j)`` with h_i = -log p(y_i) (detached). It works for any
Policy.

KL penalty (``kl_coef`` > 0): the "k3" estimator exp(r) - r - 1 with r = log p_ref(y) - log p(y),
per sequence, on the sampled completions.

Outputs in ``out_dir``: ``metrics.jsonl`` (first record: the config; then one record per step with
namespaced keys, and ``eval/...`` records), TensorBoard events (``tb/``), ``checkpoint.pt``
(atomic; model, optimizer, every RNG state and the data order) and ``final.json``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import pkpo
import pkpo.transforms
from pkpo import advantages

from ..._output import atomic_write, json_text, write_json
from .. import seeding
from ..config import TrainConfig, changed_fields
from ..interfaces import Policy, Task
from .checkpoint import (
    load_checkpoint,
    one_line,
    rng_state,
    save_checkpoint,
    set_rng_state,
    truncate_metrics,
)
from .evaluation import evaluate, score_samples
from .rundir import open_run
from .runfiles import RunFiles

# ---------------------------------------------------------------------------------------------
# library functions of the loop (each unit-tested)


def learning_rate(lr: float, schedule: str, step: int, steps: int) -> float:
    """The learning rate of ``step``: ``lr`` ("constant"), or cosine decay from lr to lr / 10
    ("cosine")."""
    if schedule == "constant" or steps <= 1:
        return lr
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps - 1) / (steps - 1))))


def leave_one_out_mean(x: torch.Tensor) -> torch.Tensor:
    """mean_{j != i} x_j over the last axis."""
    n = x.shape[-1]
    return (x.sum(-1, keepdim=True) - x) / (n - 1)


def reward_advantages(
    rewards: torch.Tensor, cfg: TrainConfig, k: int, scale: str = "none"
) -> torch.Tensor:
    """(B, n) rewards -> (B, n) advantages of the estimator ``cfg.method`` (:mod:`pkpo.advantages`)
    with its parameters (:meth:`TrainConfig.method_kwargs`), k for the methods that take it, and
    ``scale``."""
    params = cfg.method_kwargs()
    if advantages.spec(cfg.method).takes_k:
        params["k"] = k
    return advantages.compute(cfg.method, rewards, scale=scale, **params)


def difficulty_filter(adv: torch.Tensor, rewards: torch.Tensor, max_success: float) -> torch.Tensor:
    """Zero the advantages of every group whose success fraction mean_i [g_i >= 1] exceeds
    ``max_success`` (a prompt the policy already solves gets no update; ``max_success`` = 1 keeps
    every group)."""
    easy = (rewards >= 1.0).float().mean(-1, keepdim=True) > max_success
    return torch.where(easy, torch.zeros_like(adv), adv)


def shape_advantages(adv: torch.Tensor, rewards: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The estimator's advantages after the difficulty filter (``max_group_success``) and, with
    ``positive_only``, max(A, 0)."""
    if cfg.max_group_success < 1:
        adv = difficulty_filter(adv, rewards, cfg.max_group_success)
    return adv.clamp(min=0) if cfg.positive_only else adv


def policy_gradient_loss(logp, old_logp, adv, clip_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-mean_i A_i log p(y_i) (clip_eps = 0) or the PPO clipped surrogate; returns (loss, clip
    fraction).

    With clip_eps = 0 the gradient is exactly -mean_i A_i grad log p(y_i), the unbiased policy
    gradient with transformed rewards (paper eq. 7 with s_i in place of g_i). With clipping, the
    ratio is exp(log p - log p_old) and at ratio 1 (the first epoch) the gradient is the same.
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
            out.extend(int(i) for i in self.order[self.pos : self.pos + take])
            self.pos += take
        return out


# ---------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    policy: Policy,
    task: Task,
    *,
    reference: Policy | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Run RL on ``policy`` for ``task``; returns the final metrics (also in
    ``out_dir/final.json``).

    ``out_dir`` is locked for the run (:mod:`pkpo.rl.training.rundir`): a second process is refused.
    A folder that already holds a run is refused unless ``resume=True`` (continue from its
    checkpoint.pt, which must exist) or ``overwrite=True`` (delete its run files and start again).
    """
    with open_run(config.out_dir, resume=resume, overwrite=overwrite):  # config: checked when made
        return _train(config, policy, task, reference=reference, resume=resume, progress=progress)


def _check_restored(batcher, solved: np.ndarray, seen: np.ndarray, n_problems: int) -> None:
    """The data order and the per-problem flags of a checkpoint fit the task's training problems."""
    order = batcher.order
    if (
        order.shape != (n_problems,)
        or not np.issubdtype(order.dtype, np.integer)
        or not ((0 <= order) & (order < n_problems)).all()
    ):
        raise ValueError(f"its data order is not an order of the {n_problems} training problems")
    if not 0 <= batcher.pos <= order.size:
        raise ValueError(f"its position {batcher.pos} is outside the data order")
    if solved.shape != (n_problems,) or seen.shape != (n_problems,):
        raise ValueError(
            f"its solved/seen flags have {solved.size}/{seen.size} entries for {n_problems} "
            "problems"
        )


def _train(
    cfg: TrainConfig,
    policy: Policy,
    task: Task,
    *,
    reference: Policy | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    if cfg.kl_coef > 0 and reference is None:
        raise ValueError(
            "kl_coef > 0 needs a reference policy (train(..., reference=warm_start_copy))"
        )
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = RunFiles(out)
    ckpt_path, metrics_path = files.checkpoint, files.metrics
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
    hard = (
        np.array([bool(task.is_hard(p)) for p in train_problems])
        if hasattr(task, "is_hard")
        else None
    )
    schedule = cfg.schedule()
    takes_k = advantages.spec(
        cfg.method
    ).takes_k  # scale "n_over_k" uses k (validate refuses it otherwise)
    ent_coef = cfg.entropy_coef

    # --- seeding, optimiser, state (TRY NOT TO MODIFY: exact resumption depends on this order)
    seeding.seed_globals(cfg.seed)
    gen = seeding.torch_stream(cfg.seed, "sampling", device.type)
    data_rng = seeding.stream(cfg.seed, "data_order")
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
        try:  # a checkpoint with a valid hash may still not fit this run: one line, not a traceback
            policy.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"], gen, data_rng)
            batcher.order, batcher.pos = (
                np.asarray(state["batcher"]["order"]),
                int(state["batcher"]["pos"]),
            )
            solved = np.asarray(state["solved"], dtype=bool)
            seen = (
                np.asarray(state["seen"], dtype=bool) if "seen" in state else np.ones_like(solved)
            )
            _check_restored(batcher, solved, seen, len(train_problems))
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            RuntimeError,
            NotImplementedError,
        ) as error:
            raise ValueError(
                f"checkpoint {str(ckpt_path)!r} does not fit this run ({one_line(error)}); delete "
                "it or start without --resume"
            ) from None
        start_step, last_eval = int(state["step"]), state.get("last_eval", {})
        truncate_metrics(metrics_path, start_step)
    else:
        first = {
            "config": cfg.to_dict(),
            "task": getattr(task, "name", "?"),
            "policy_params": sum(p.numel() for p in policy.parameters()),
        }
        atomic_write(metrics_path, json_text(first) + "\n")
    writer = _tensorboard(files.tensorboard, start_step) if cfg.tensorboard else None
    bs, n = cfg.prompts_per_step, cfg.n
    if progress and start_step == 0:
        print(
            f"{cfg.run_name()}: {bs} prompts x {n} samples = {bs * n} completions per step, "
            f"k schedule {schedule.describe()}, {cfg.steps} steps"
        )
        if eval_problems:
            every = f"every {cfg.eval_every} steps from step 0 and " if cfg.eval_every else ""
            print(
                f"held-out evaluation: {len(eval_problems)} problems x {cfg.eval_samples} samples, "
                f"{every}at the end",
                flush=True,
            )

    def checkpoint(step: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "model": policy.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng_state(gen, data_rng),
                "batcher": {"order": batcher.order.tolist(), "pos": batcher.pos},
                "solved": solved.tolist(),
                "seen": seen.tolist(),
                "config": cfg.to_dict(),
                "last_eval": last_eval,
            },
        )

    def run_eval(step: int, problems=eval_problems) -> dict:
        detail = problems is not eval_problems  # the final evaluation keeps per-problem counts
        result = evaluate(
            policy,
            problems,
            task,
            samples=cfg.eval_samples,
            ks=cfg.eval_ks,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.eval_temperature,
            seed=seeding.eval_seed(cfg.seed, step),
            detail=detail,
            greedy_temperature=cfg.greedy_temperature,
            greedy_samples=cfg.greedy_samples,
        )
        if detail:
            write_json(files.eval_detail, result.pop("detail"))
        record = {"step": step, **{f"eval/{key}": v for key, v in result.items()}}
        _log(metrics_path, writer, record)
        return result

    def solve_rates() -> dict:
        """Fraction of the training problems drawn so far that some sample solved (all; hard
        only)."""
        rates = {"train/cumulative_solve_rate": float(solved[seen].mean()) if seen.any() else 0.0}
        if hard is not None:
            rates["train/hard_solve_rate"] = (
                float(solved[seen & hard].mean()) if (seen & hard).any() else 0.0
            )
        return rates

    t_start = time.time()
    bar = tqdm(
        range(start_step, cfg.steps),
        initial=start_step,
        total=cfg.steps,
        desc=cfg.run_name()[:40],
        disable=not progress,
        dynamic_ncols=True,
    )
    for step in bar:
        if cfg.eval_every and eval_problems and step % cfg.eval_every == 0:
            last_eval = run_eval(step)
        t0 = time.time()
        policy.train()
        k = int(schedule(step))
        # --- rollout
        idx = batcher.next(bs)
        problems = [train_problems[i] for i in idx]
        samples = policy.sample(
            [policy.encode(p.prompt) for p in problems],
            n,
            cfg.max_new_tokens,
            cfg.temperature,
            generator=gen,
        )
        rewards_np = score_samples(task, problems, policy, samples)  # (B, n)
        solved[idx] |= (rewards_np >= 1.0).any(axis=1)
        seen[idx] = True
        rewards = torch.as_tensor(rewards_np, dtype=torch.float32, device=device)
        t_sample = time.time() - t0
        # --- advantages: the estimator's own values, filtered (logged), then scaled
        adv_raw = shape_advantages(reward_advantages(rewards, cfg, k), rewards, cfg)  # (B, n)
        adv = pkpo.transforms.scale_advantages(adv_raw, k if takes_k else 1, cfg.scale)
        with torch.no_grad():
            ref_logp = reference.sequence_logprobs(samples).view(bs, n) if cfg.kl_coef > 0 else None
        # --- update
        lr_now = learning_rate(cfg.lr, cfg.lr_schedule, step, cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        for epoch in range(cfg.ppo_epochs):
            logp = policy.sequence_logprobs(samples).view(bs, n)  # (B, n)
            if (
                epoch == 0
            ):  # the sampling policy's log-probs (same weights, so no second forward pass)
                old_logp = logp.detach()
                if ent_coef > 0:
                    h = -old_logp  # (B, n) sampled sequence surprise; E[h] is the sequence entropy
                    adv = adv + ent_coef * (h - leave_one_out_mean(h))
            pg_loss, clip_frac = policy_gradient_loss(logp, old_logp, adv, cfg.clip_eps)
            kl = (
                kl_penalty(logp, ref_logp)
                if ref_logp is not None
                else torch.zeros((), device=device)
            )
            loss = pg_loss + cfg.kl_coef * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                policy.parameters(), cfg.grad_clip or float("inf")
            )
            optimizer.step()
        # --- logging
        dt = time.time() - t0
        tokens = int(samples.completion_mask.sum())
        record = {
            "step": step,
            "k": k,
            "reward/mean": float(rewards_np.mean()),
            "reward/pass_at_k": float(np.mean(pkpo.pass_at_k(rewards_np >= 1.0, k))),
            "reward/solved_frac": float((rewards_np >= 1.0).any(axis=1).mean()),
            "adv/mean_abs": float(adv_raw.abs().mean()),
            "adv/zero_signal_frac": float((adv_raw.abs().amax(-1) == 0).float().mean()),
            "loss/policy": float(pg_loss.detach()),
            "loss/kl": float(kl.detach()),
            "loss/clip_frac": float(clip_frac),
            "policy/entropy": float((-old_logp).mean()),
            "optim/grad_norm": float(grad_norm),
            "optim/lr": lr_now,
            **solve_rates(),
            "perf/step_s": dt,
            "perf/sample_s": t_sample,
            "perf/samples_per_s": bs * n / dt,
            "perf/tokens_per_s": tokens / max(t_sample, 1e-9),
        }
        _log(metrics_path, writer, record)
        bar.set_postfix(
            k=k,
            r=f"{record['reward/mean']:.2f}",
            solve=f"{record['train/cumulative_solve_rate']:.2f}",
        )
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            checkpoint(step + 1)
    bar.close()

    final_eval = run_eval(cfg.steps, final_problems) if final_problems else {}
    checkpoint(cfg.steps)
    rates = solve_rates()
    final = {
        "name": cfg.run_name(),
        "method": cfg.method,
        "k_schedule": schedule.describe(),
        "baseline": cfg.baseline,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "cumulative_solve_rate": rates["train/cumulative_solve_rate"],
        "hard_solve_rate": rates.get("train/hard_solve_rate"),
        "problems_seen": int(seen.sum()),
        **final_eval,
        "wall_s_this_session": time.time() - t_start,
        "config": cfg.to_dict(),
    }
    write_json(files.final, final, indent=2)
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
        fh.write(json_text(record) + "\n")
    if writer is not None:
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, step)
