"""RL for language policies with PKPO: one readable loop, CleanRL order.

Copy-paste::

    pkpo train --task hidden-rule --k 8 --steps 300 --out runs/k8            # from flags
    pkpo train --config examples/rl/k8.toml --resume                         # from TOML, continue a run

or from Python::

    from pkpo.rl.trainer import TrainConfig, train
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

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package (pkpo[rl] installs it)
    import tomli as tomllib

import numpy as np
import torch
from tqdm.auto import tqdm

import pkpo
from pkpo._validation import SCALES
from pkpo.schedules import from_spec
from pkpo.transforms import scale_advantages

from .evaluation import evaluate, score_samples
from .interfaces import Policy, Task
from .rundir import open_run

METHODS = ("pkpo", "loo", "grpo", "tzsm", "entropy")
BASELINES = ("none", "loo", "loo_minus_one", "centered")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one RL run. ``validate()`` checks it before any work."""

    # --- task and policy (used by the CLI to build them; ``train`` takes them ready-made)
    task: str = "hidden-rule"
    """task name (``pkpo.rl.tasks.TASKS``)"""
    tier: str = "hard"
    """hidden-rule tier: "easy" (hint names the rule) or "hard" (hint is "?")"""
    feature: str = "sum"
    """hard-tier difficulty: "first" (learnable hidden feature) or "sum" (not learnable)"""
    task_seed: int = 0
    """seed of the problem set (fixed across training seeds, so seeds share held-out problems)"""
    length: int = 6
    """hidden-rule: digits per string"""
    n_train: int = 512
    """number of training problems"""
    n_heldout: int = 128
    """number of held-out problems"""
    n_validation: int = 128
    """number of validation problems (for tuning; disjoint from train and held-out)"""
    d_model: int = 96
    """GPT width"""
    n_layer: int = 3
    """GPT blocks"""
    n_head: int = 4
    """GPT attention heads"""
    warm_steps: int = 1200
    """supervised warm-start steps (0: none); cached on disk per config and seed"""
    warm_batch: int = 64
    """warm-start batch size"""
    warm_lr: float = 2e-3
    """warm-start learning rate"""
    demo_power: float = 2.0
    """warm start: "?" prompts are demonstrated with rule probability proportional to prior ** demo_power"""
    demo_uniform: float = 0.0
    """warm start: weight of the uniform distribution over rules mixed into the "?" demonstrations"""
    # --- RL
    steps: int = 300
    """RL steps"""
    prompts_per_step: int = 16
    """prompts per step (B)"""
    n: int = 16
    """completions per prompt"""
    k: str = "1"
    """k schedule spec for method "pkpo" (``pkpo.schedules.from_spec``: "4", "8->1@200", "linear:8->1@0+300")"""
    baseline: str = "loo_minus_one"
    """PKPO transform variant: "none", "loo", "loo_minus_one" (the paper's PKPO) or "centered\""""
    method: str = "pkpo"
    """"pkpo", "loo", "grpo", "tzsm" or "entropy" (module docstring)"""
    lr: float = 3e-4
    """AdamW learning rate"""
    lr_schedule: str = "constant"
    """"constant", or "cosine": cosine decay from lr to lr / 10 over the run (``learning_rate``)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_new_tokens: int = 8
    """longest completion in tokens (including EOS)"""
    temperature: float = 1.0
    """sampling temperature during training and evaluation"""
    clip_eps: float = 0.0
    """PPO ratio clipping epsilon (0: no clipping, plain policy gradient)"""
    ppo_epochs: int = 1
    """optimisation epochs per batch of samples (> 1 needs clip_eps > 0)"""
    kl_coef: float = 0.0
    """weight of the KL penalty to the reference policy (needs ``reference``)"""
    entropy_coef: float = 0.0
    """entropy bonus weight (method "entropy" uses 0.05 when this is 0)"""
    grad_clip: float = 1.0
    """global gradient-norm clip (0: none)"""
    scale: str = "mean_abs"
    """advantage scale: "mean_abs" (divide by the batch mean |A|), "n_over_k" (times n/k) or "none\""""
    # --- evaluation, logging, checkpoints
    eval_every: int = 50
    """held-out evaluation every this many steps (0: only at the end)"""
    eval_problems: int = 128
    """held-out problems per evaluation (0: no evaluation)"""
    final_eval_problems: int = 0
    """held-out problems of the final evaluation (0: the same as eval_problems)"""
    eval_split: str = "heldout"
    """the split evaluated: "heldout" (final numbers) or "validation" (tuning)"""
    eval_samples: int = 32
    """samples per held-out problem (pass@k up to this k is unbiased)"""
    eval_ks: tuple = (1, 2, 4, 8, 16)
    """k values of the held-out pass@k"""
    seed: int = 0
    """training seed (model init, warm start, sampling, data order)"""
    out_dir: str = "runs/train"
    """output directory"""
    device: str = "cpu"
    """"cpu" or "cuda\""""
    threads: int = 1
    """torch CPU threads (never more than the cores)"""
    checkpoint_every: int = 50
    """checkpoint every this many steps (0: only at the end)"""
    tensorboard: bool = True
    """also write TensorBoard events to out_dir/tb"""

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        values = dict(values)
        if "k" in values:
            values["k"] = str(values["k"])
        if "eval_ks" in values:
            values["eval_ks"] = tuple(int(k) for k in values["eval_ks"])
        return cls(**values)

    @classmethod
    def from_toml(cls, path) -> "TrainConfig":
        """Read a flat TOML file (keys are field names; tables are flattened into the top level)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        flat: dict = {}
        for key, value in data.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return cls.from_dict(flat).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["eval_ks"] = list(self.eval_ks)
        return d

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def schedule(self):
        """The k schedule actually used: ``from_spec(k)`` for pkpo, 1 or n for the other methods."""
        if self.method == "pkpo":
            return from_spec(self.k)
        return from_spec(str(self.n if self.method == "tzsm" else 1))

    def validate(self) -> "TrainConfig":
        def need(cond, msg):
            if not cond:
                raise ValueError(msg)

        for name in ("steps", "warm_steps", "eval_every", "eval_problems", "final_eval_problems", "checkpoint_every",
                     "seed", "task_seed"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0,
                 f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("prompts_per_step", "n", "max_new_tokens", "ppo_epochs", "warm_batch", "eval_samples",
                     "threads", "d_model", "n_layer", "n_head", "n_train", "n_heldout", "n_validation", "length"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                 f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        need(self.method in METHODS, f"unknown method {self.method!r}; expected one of {METHODS}")
        need(self.baseline in BASELINES, f"unknown baseline {self.baseline!r}; expected one of {BASELINES}")
        need(self.scale in SCALES, f"unknown scale {self.scale!r}; expected one of {SCALES}")
        need(self.scale != "n_over_k" or self.method != "grpo",
             'scale "n_over_k" undoes the k/n factor of PKPO advantages; GRPO has none (use "mean_abs" or "none")')
        need(self.n >= 2, f"n must be >= 2 (leave-one-out baselines need two samples per prompt), got {self.n}")
        try:
            sched = self.schedule()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad k schedule {self.k!r}: {exc}") from None
        need(sched.max_k <= self.n, f"k schedule {self.k!r} reaches k={sched.max_k} > n={self.n}")
        if self.method == "pkpo" and self.baseline in ("loo", "centered"):
            need(sched.max_k + 1 <= self.n,
                 f"baseline {self.baseline!r} needs n >= k + 1, but k reaches {sched.max_k} with n={self.n}")
        need(math.isfinite(self.demo_power) and self.demo_power >= 0, f"demo_power must be >= 0, got {self.demo_power!r}")
        need(0 <= self.demo_uniform <= 1, f"demo_uniform must be in [0, 1], got {self.demo_uniform!r}")
        for name in ("lr", "temperature", "warm_lr"):
            need(math.isfinite(getattr(self, name)) and getattr(self, name) > 0,
                 f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("clip_eps", "kl_coef", "entropy_coef", "grad_clip", "weight_decay"):
            need(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0,
                 f"{name} must be >= 0, got {getattr(self, name)!r}")
        need(self.ppo_epochs == 1 or self.clip_eps > 0, "ppo_epochs > 1 needs clip_eps > 0 (PPO ratio clipping)")
        need(all(1 <= k <= self.eval_samples for k in self.eval_ks),
             f"every eval k in {list(self.eval_ks)} must be in [1, eval_samples={self.eval_samples}]")
        need(self.device == "cpu" or self.device.startswith("cuda"), f"device must be 'cpu' or 'cuda[:i]', got {self.device!r}")
        need(self.tier in ("easy", "hard"), f"unknown tier {self.tier!r}; expected 'easy' or 'hard'")
        need(self.feature in ("first", "sum", "mixed"),
             f"unknown feature {self.feature!r}; expected 'first', 'sum' or 'mixed'")
        need(self.lr_schedule in LR_SCHEDULES, f"unknown lr_schedule {self.lr_schedule!r}; expected one of {LR_SCHEDULES}")
        need(self.eval_split in ("heldout", "validation"),
             f"unknown eval_split {self.eval_split!r}; expected 'heldout' or 'validation'")
        from .tasks import TASKS  # registered task names (the CLI may also know others)

        need(self.task in TASKS or self.task.startswith("nl:"),
             f"unknown task {self.task!r}; expected one of {sorted(TASKS)}")
        return self

    @property
    def effective_entropy_coef(self) -> float:
        return self.entropy_coef if self.entropy_coef > 0 or self.method != "entropy" else 0.05

    def run_name(self) -> str:
        k = {"pkpo": f"k{self.k}", "tzsm": "tzsm", "grpo": "grpo", "loo": "loo", "entropy": "entropy"}[self.method]
        # tier and feature only describe the synthetic hidden-rule tasks, not the nl: word problems
        task = self.task if self.task.startswith("nl:") else f"{self.task}-{self.tier}-{self.feature}"
        return f"{task}__{k}__{self.baseline}__s{self.seed}".replace(">", "").replace("@", "at").replace(":", "-")


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


def tzsm_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """[TZSM25] leave-one-out max: A_i = max_j g_j - max_{j != i} g_j over the last axis (n >= 2)."""
    top2 = rewards.topk(2, dim=-1).values  # (B, 2)
    is_top = rewards == top2[..., :1]
    n_top = is_top.sum(-1, keepdim=True)
    max_others = torch.where(is_top & (n_top == 1), top2[..., 1:2], top2[..., :1])
    return top2[..., :1] - max_others


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
    if method == "tzsm":
        return tzsm_advantages(rewards)
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


# ---------------------------------------------------------------------------------------------
# checkpoints: sha256 header + torch payload, written to a temp file and renamed


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(hashlib.sha256(payload).hexdigest().encode() + b"\n")
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load and verify a checkpoint; a damaged or foreign file raises ValueError."""
    raw = Path(path).read_bytes()
    digest, _, payload = raw.partition(b"\n")
    if len(digest) != 64 or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(f"checkpoint {str(path)!r} is corrupted (checksum mismatch); delete it or start without --resume")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    missing = {"step", "model", "optimizer", "rng", "config"} - set(state)
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks {sorted(missing)}")
    return state


def _rng_state(gen: torch.Generator, data_rng: np.random.Generator) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "sampler": gen.get_state(), "data": data_rng.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, gen: torch.Generator, data_rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    gen.set_state(state["sampler"])
    data_rng.bit_generator.state = state["data"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# fields that may change between an interrupted run and its resumption
_RESUMABLE_CHANGES = {"steps", "eval_every", "checkpoint_every", "out_dir", "threads", "tensorboard", "device"}


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

    ``out_dir`` is locked for the run (:mod:`pkpo.rl.rundir`): a second process is refused. A folder
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
        old = {k: v for k, v in state["config"].items() if k not in _RESUMABLE_CHANGES}
        new = {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE_CHANGES}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"cannot resume {str(ckpt_path)!r}: config differs in {diff}")
        policy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], gen, data_rng)
        batcher.order, batcher.pos = np.asarray(state["batcher"]["order"]), int(state["batcher"]["pos"])
        solved = np.asarray(state["solved"], dtype=bool)
        seen = np.asarray(state["seen"], dtype=bool) if "seen" in state else np.ones_like(solved)
        start_step, last_eval = int(state["step"]), state.get("last_eval", {})
        _truncate_metrics(metrics_path, start_step)
    else:
        metrics_path.write_text(json.dumps({"config": cfg.to_dict(), "task": getattr(task, "name", "?"),
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
            "rng": _rng_state(gen, data_rng), "batcher": {"order": batcher.order.tolist(), "pos": batcher.pos},
            "solved": solved.tolist(), "seen": seen.tolist(), "config": cfg.to_dict(), "last_eval": last_eval})

    def run_eval(step: int, problems=eval_problems) -> dict:
        detail = problems is not eval_problems  # the final evaluation keeps per-problem counts
        result = evaluate(policy, problems, task, samples=cfg.eval_samples, ks=cfg.eval_ks,
                          max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed * 7919 + step,
                          detail=detail)
        if detail:
            (out / "eval_detail.json").write_text(json.dumps(result.pop("detail")))
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
            grad_norm = (torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip) if cfg.grad_clip > 0
                         else torch.sqrt(sum((p.grad ** 2).sum() for p in policy.parameters() if p.grad is not None)))
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
    (out / "final.json").write_text(json.dumps(final, indent=2))
    if writer is not None:
        writer.close()
    return final


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint (they will be logged again, identically)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "config" in rec or rec.get("step", 0) < step:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


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
