"""The configuration of one RL run: :class:`TrainConfig`, read from flags, a dict or a TOML file.

::

    cfg = TrainConfig(k="8->1@200", steps=300, out_dir="runs/anneal")
    cfg = TrainConfig.from_toml("my_run.toml")

Every field has a default and a help text (``pkpo train --help`` lists them). A config is checked
once, when it is made (also by ``replace``, ``from_dict`` and ``from_toml``): a bad value raises
``ValueError`` naming the field and the value, so a config that exists is valid and is trusted.
:data:`PRESETS` are the named settings of ``pkpo train --preset`` (``pkpo demo`` runs ``demo`` or
``quick``, with the runs :data:`DEMO_RUNS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import tomllib
except (
    ModuleNotFoundError
):  # Python 3.10: the same parser as the tomli package (pkpo[rl] installs it)
    import tomli as tomllib

import pkpo
from pkpo import advantages
from pkpo.schedules import from_spec

METHODS = advantages.names()
# methods of the first trainer that are no longer methods: name -> what to use instead
REMOVED_METHODS = {
    "loo": 'method "pkpo" with k "1" (the same advantages; "rloo" is the same up to the factor n '
    "- 1)",
    "entropy": 'method "pkpo" with k "1" and entropy_coef 0.05 (the entropy bonus is a loss term '
    "of any method)",
}
LR_SCHEDULES = ("constant", "cosine")
# fields that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = frozenset(
    {"steps", "eval_every", "checkpoint_every", "out_dir", "threads", "tensorboard", "device"}
)


# fields added to TrainConfig after runs were first recorded, with the value that reproduces the
# runs recorded without them (a field whose default changes behaviour, such as the near-greedy
# evaluation's settings, is not listed: a run recorded before it is a different run)
NEUTRAL_ADDITIONS = {
    "maze_size": 9,
    "majority_share": 0.6,  # the mixed task's AMBIGUOUS_PRIOR: its problems are unchanged
}


def with_added_fields(recorded: dict) -> dict:
    """A config dict recorded by an older version, with the :data:`NEUTRAL_ADDITIONS` it lacks."""
    return {**NEUTRAL_ADDITIONS, **recorded}


def same_config(recorded: dict | None, current: dict) -> bool:
    """Whether a recorded config dict describes the run of ``current`` (see
    :func:`with_added_fields`). ``out_dir`` is where a run is, not what it is: a folder moved, or
    reached by another path (a link), holds the same run."""
    if recorded is None:
        return False
    recorded = {**with_added_fields(recorded), "out_dir": None}
    return recorded == {**current, "out_dir": None}


def changed_fields(old: dict, new: dict) -> list[str]:
    """The fields, other than :data:`RESUMABLE_CHANGES`, whose values differ between two config
    dicts (``old`` with the :data:`NEUTRAL_ADDITIONS` it lacks: :func:`with_added_fields`)."""
    old = with_added_fields(old)
    return sorted(
        k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k)
    )


def _typed(key: str, value, hint):
    """``value`` as the type of field ``key``, or a ValueError: no bool for a number, no number for
    a string or a bool, no float for an integer (the k schedule ``k`` may also be an integer)."""

    def refuse(what: str) -> ValueError:  # the value as TOML and JSON write it: true, "false", 1.5
        return ValueError(
            f"config key {key!r} must be {what}; got {json.dumps(value, default=repr)}"
        )

    def integer(item) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    if hint is bool:
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if hint is int:
        if not integer(value):
            raise refuse("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse("a number")
        return float(value)
    if hint is str:
        if key == "k" and integer(value):
            return str(value)
        if not isinstance(value, str):
            raise refuse("a string")
        return value
    if typing.get_origin(hint) is tuple:  # eval_ks: integers
        if not isinstance(value, (list, tuple)) or not all(integer(item) for item in value):
            raise refuse("a list of integers")
        return tuple(value)
    return value


# The largest sizes accepted: far beyond any run that fits a machine, small enough that a typo is
# refused before anything is allocated (n = prompts_per_step = 100000 asks for 10^10 completions a
# step).
SIZE_LIMITS = {
    "n": 1 << 16,
    "prompts_per_step": 1 << 16,
    "eval_samples": 1 << 16,
    "warm_batch": 1 << 16,
    "max_new_tokens": 1 << 16,
    "length": 1 << 12,
    "d_model": 1 << 16,
    "n_layer": 1 << 10,
    "n_head": 1 << 10,
    "threads": 1 << 10,
    "n_train": 10**8,
    "n_heldout": 10**8,
    "n_validation": 10**8,
    "eval_problems": 10**8,
    "final_eval_problems": 10**8,
}
MAX_COMPLETIONS_PER_STEP = 1 << 20  # prompts_per_step * n


def check_sizes(cfg) -> None:
    """Refuse sizes no machine could run (:data:`SIZE_LIMITS`), before anything is allocated."""
    for name, limit in SIZE_LIMITS.items():
        value = getattr(cfg, name)
        if isinstance(value, int) and value > limit:
            raise ValueError(f"{name} must be at most {limit:,}, got {value:,}")
    completions = cfg.prompts_per_step * cfg.n
    if completions > MAX_COMPLETIONS_PER_STEP:
        raise ValueError(
            f"prompts_per_step x n = {completions:,} completions per step; at most "
            f"{MAX_COMPLETIONS_PER_STEP:,} are accepted"
        )


def _opt(default, help: str):
    """A config field with its help text (``pkpo train --help`` shows it)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one RL run; checked when it is made (a bad value is a ValueError)."""

    # --- task and policy (used by the CLI to build them; ``train`` takes them ready-made)
    task: str = _opt("hidden-rule", "task name (``pkpo.rl.tasks.TASKS``)")
    tier: str = _opt(
        "hard", 'hidden-rule tier: "easy" (hint names the rule) or "hard" (hint is "?")'
    )
    feature: str = _opt(
        "mixed",
        'hard-tier task law: "mixed" (the demo\'s: a learnable minority, a majority trap and '
        'ambiguous problems), "first" (every rule a function of the first digit: pass@1 and '
        'pass@k share one optimum) or "sum" (a function of the digit sum: not learnable)',
    )
    task_seed: int = _opt(
        0, "seed of the problem set (fixed across training seeds, so seeds share held-out problems)"
    )
    length: int = _opt(6, "hidden-rule: digits per string")
    n_train: int = _opt(512, "number of training problems")
    n_heldout: int = _opt(128, "number of held-out problems")
    n_validation: int = _opt(
        128, "number of validation problems (for tuning; disjoint from train and held-out)"
    )
    maze_size: int = _opt(9, "maze tasks: side of the grid (odd, >= 5; MaxRL's is 17)")
    d_model: int = _opt(96, "GPT width")
    n_layer: int = _opt(3, "GPT blocks")
    n_head: int = _opt(4, "GPT attention heads")
    warm_steps: int = _opt(
        1200, "supervised warm-start steps (0: none); cached on disk per config and seed"
    )
    warm_batch: int = _opt(64, "warm-start batch size")
    warm_lr: float = _opt(2e-3, "warm-start learning rate")
    demo_power: float = _opt(
        2.0,
        'warm start: "?" prompts are demonstrated with rule probability proportional to prior ** '
        "demo_power",
    )
    demo_uniform: float = _opt(
        0.0,
        'warm start: weight of the uniform distribution over rules mixed into the "?" '
        "demonstrations",
    )
    majority_share: float = _opt(
        0.6,
        'feature "mixed": the majority rule\'s share of the ambiguous problems, in (0, 1) (the '
        "other rules keep their proportions: d 50 %, s, i, o, w 12.5 % each of the rest)",
    )
    # --- RL
    steps: int = _opt(300, "RL steps")
    prompts_per_step: int = _opt(16, "prompts per step (B)")
    n: int = _opt(16, "completions per prompt")
    k: str = _opt(
        "1",
        'k schedule spec for the methods that take k ("pkpo", "passk_training", '
        '"pkpo_two_baselines"; ``pkpo.schedules.from_spec``: "4", "8->1@200", '
        '"linear:8->1@0+300"); the others need "1"',
    )
    baseline: str = _opt(
        "loo_minus_one",
        'PKPO transform variant: "none", "loo", "loo_minus_one" (the paper\'s PKPO) or "centered"',
    )
    method: str = _opt(
        "pkpo",
        "advantage estimator, any name of ``pkpo.advantages.names()``: " + ", ".join(METHODS),
    )
    method_params: str = _opt(
        "",
        'the estimator\'s own parameters as "name=value,..." (e.g. "beta=4" for rs_grpo, '
        '"lam=0.2" for w_reinforce, "eps=1e-4" for grpo); k and baseline are fields of their own',
    )
    lr: float = _opt(3e-4, "AdamW learning rate")
    lr_schedule: str = _opt(
        "constant", '"constant", or "cosine": cosine decay from lr to lr / 10 over the run'
    )
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    max_new_tokens: int = _opt(8, "longest completion in tokens (including EOS)")
    temperature: float = _opt(1.0, "sampling temperature of training (evaluation has its own)")
    max_group_success: float = _opt(
        1.0,
        "difficulty filter: zero the advantages of a prompt whose fraction of correct samples "
        "exceeds this (1: no filter)",
    )
    positive_only: bool = _opt(
        False, "keep only the positive advantages (the negative ones become 0)"
    )
    clip_eps: float = _opt(
        0.0, "PPO ratio clipping epsilon (0: no clipping, plain policy gradient)"
    )
    ppo_epochs: int = _opt(1, "optimisation epochs per batch of samples (> 1 needs clip_eps > 0)")
    kl_coef: float = _opt(
        0.0, "weight of the KL penalty to the reference policy (needs ``reference``)"
    )
    entropy_coef: float = _opt(
        0.0, "entropy bonus weight: a loss term that combines with any method (0: none)"
    )
    grad_clip: float = _opt(1.0, "global gradient-norm clip (0: none)")
    scale: str = _opt(
        "mean_abs",
        'advantage scale: "mean_abs" (divide by the batch mean |A|), "n_over_k" (times n/k) or '
        '"none"',
    )
    # --- evaluation, logging, checkpoints
    eval_every: int = _opt(50, "held-out evaluation every this many steps (0: only at the end)")
    eval_problems: int = _opt(128, "held-out problems per evaluation (0: no evaluation)")
    final_eval_problems: int = _opt(
        0, "held-out problems of the final evaluation (0: the same as eval_problems)"
    )
    eval_split: str = _opt(
        "heldout", 'the split evaluated: "heldout" (final numbers) or "validation" (tuning)'
    )
    eval_samples: int = _opt(32, "samples per held-out problem (pass@k up to this k is unbiased)")
    eval_temperature: float = _opt(
        1.0, "sampling temperature of the evaluation's pass@k (training has its own)"
    )
    greedy_temperature: float = _opt(
        0.05,
        "temperature (<= 0.1) of the near-greedy pass@1 that every evaluation reports "
        "beside pass@k",
    )
    greedy_samples: int = _opt(2, "samples per problem of the near-greedy pass@1")
    eval_ks: tuple[int, ...] = _opt((1, 2, 4, 8, 16), "k values of the held-out pass@k")
    seed: int = _opt(0, "training seed (model init, warm start, sampling, data order)")
    out_dir: str = _opt("runs/train", "output directory")
    device: str = _opt("cpu", '"cpu" or "cuda"')
    threads: int = _opt(1, "torch CPU threads (never more than the cores)")
    checkpoint_every: int = _opt(50, "checkpoint every this many steps (0: only at the end)")
    tensorboard: bool = _opt(True, "also write TensorBoard events to out_dir/tb")

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A config from a dict of field values (a TOML file, a saved config), each checked against
        its field's type as strictly as the flag of ``pkpo train``: ``steps = true``,
        ``tensorboard = "false"``, ``eval_ks = [1.5, 2]`` or ``device = 0`` is a ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        hints = typing.get_type_hints(cls)
        return cls(**{key: _typed(key, value, hints[key]) for key, value in values.items()})

    @classmethod
    def from_toml(cls, path) -> "TrainConfig":
        """Read a TOML file whose keys are field names; tables only group them (``[eval]``,
        ``[rl]``).

        A key given twice (at the top level and in a table, or in two tables) is an error naming
        both places.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        flat, where = {}, {}
        items = [
            (key, value, "the top level")
            for key, value in data.items()
            if not isinstance(value, dict)
        ]
        items += [
            (key, value, f"[{table}]")
            for table, values in data.items()
            if isinstance(values, dict)
            for key, value in values.items()
        ]
        for key, value, place in items:
            if key in flat:
                raise ValueError(
                    f"config file {str(path)!r} sets {key!r} twice: in {where[key]} and in {place}"
                )
            flat[key], where[key] = value, place
        return cls.from_dict(flat)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["eval_ks"] = list(self.eval_ks)
        return d

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def schedule(self):
        """The k schedule actually used: ``from_spec(k)`` for the methods that take k; for the
        others the k they target, which the trainer logs: n for "tzsm" (pass@n), 1 for every other
        method."""
        if advantages.spec(self.method).takes_k:
            return from_spec(self.k)
        return from_spec(str(self.n if self.method == "tzsm" else 1))

    def method_kwargs(self) -> dict:
        """The estimator's parameters: ``method_params`` parsed ("beta=4" -> {"beta": 4.0}), plus
        ``baseline`` for "pkpo"; k comes from the schedule at each step. ValueError on a parameter
        the method does not take or a value that is not a number."""
        spec = advantages.spec(self.method)
        own = {name for name in spec.defaults if name not in ("k", "baseline")}
        params = {}
        for item in filter(None, (part.strip() for part in self.method_params.split(","))):
            name, eq, value = (s.strip() for s in item.partition("="))
            if not eq or not name or not value:
                raise ValueError(f'bad method_params item {item!r}; expected "name=value"')
            if name not in own:
                accepted = ", ".join(sorted(own)) or "none"
                raise ValueError(
                    f"method {self.method!r} takes no parameter {name!r} in method_params; "
                    f"its parameters: {accepted}"
                )
            if name in params:
                raise ValueError(f"method_params sets {name!r} twice")
            try:
                params[name] = float(value)
            except ValueError:
                raise ValueError(f"method_params {name}={value!r} is not a number") from None
        if "baseline" in spec.defaults:
            params["baseline"] = self.baseline
        return params

    def __post_init__(self) -> None:
        """Check every field, once: whoever holds a TrainConfig holds a valid one."""

        def need(cond, msg):
            if not cond:
                raise ValueError(msg)

        for name in (
            "steps",
            "warm_steps",
            "eval_every",
            "eval_problems",
            "final_eval_problems",
            "checkpoint_every",
            "seed",
            "task_seed",
        ):
            need(
                isinstance(getattr(self, name), int) and getattr(self, name) >= 0,
                f"{name} must be an integer >= 0, got {getattr(self, name)!r}",
            )
        for name in (
            "prompts_per_step",
            "n",
            "max_new_tokens",
            "ppo_epochs",
            "warm_batch",
            "eval_samples",
            "greedy_samples",
            "threads",
            "d_model",
            "n_layer",
            "n_head",
            "n_train",
            "n_heldout",
            "n_validation",
            "length",
        ):
            need(
                isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                f"{name} must be an integer >= 1, got {getattr(self, name)!r}",
            )
        check_sizes(self)
        need(
            self.method not in REMOVED_METHODS,
            f"method {self.method!r} was folded into the estimator family: use "
            f"{REMOVED_METHODS.get(self.method)}",
        )
        need(
            self.method in METHODS,
            f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}",
        )
        takes_k = advantages.spec(self.method).takes_k
        need(
            self.baseline in pkpo.BASELINES,
            f"unknown baseline {self.baseline!r}; expected one of {pkpo.BASELINES}",
        )
        need(
            self.scale in pkpo.SCALES,
            f"unknown scale {self.scale!r}; expected one of {pkpo.SCALES}",
        )
        need(
            self.scale != "n_over_k" or takes_k,
            f'scale "n_over_k" multiplies by n/k, but method {self.method!r} takes no k (use '
            '"mean_abs" or "none")',
        )
        need(
            takes_k or str(self.k).strip() == "1",
            f'method {self.method!r} takes no k schedule (got k {self.k!r}); leave k at "1" '
            f"(it targets k = {'n' if self.method == 'tzsm' else 1}, which the trainer logs)",
        )
        self.method_kwargs()  # raises on a bad method_params
        need(
            self.n >= 2,
            f"n must be >= 2 (leave-one-out baselines need two samples per prompt), got {self.n}",
        )
        try:
            sched = self.schedule()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad k schedule {self.k!r}: {exc}") from None
        need(sched.max_k <= self.n, f"k schedule {self.k!r} reaches k={sched.max_k} > n={self.n}")
        if self.method == "pkpo":
            need(
                self.n >= pkpo.min_group_size(sched.max_k, self.baseline),
                f"baseline {self.baseline!r} needs n >= k + 1, but k reaches {sched.max_k} with "
                f"n={self.n}",
            )
        # the estimator checks its own parameter values (beta != 0, lam >= 0, ...) on one
        # dummy group
        try:
            k_arg = {"k": sched.max_k} if advantages.spec(self.method).takes_k else {}
            advantages.compute(self.method, np.zeros((1, self.n)), **k_arg, **self.method_kwargs())
        except ValueError as exc:
            raise ValueError(
                f"method {self.method!r} with method_params {self.method_params!r}: {exc}"
            ) from None
        need(
            math.isfinite(self.demo_power) and self.demo_power >= 0,
            f"demo_power must be >= 0, got {self.demo_power!r}",
        )
        need(
            0 <= self.demo_uniform <= 1,
            f"demo_uniform must be in [0, 1], got {self.demo_uniform!r}",
        )
        from .tasks.hidden_rule import MAJORITY_SHARE, check_majority_share

        check_majority_share(self.majority_share)
        need(
            self.feature == "mixed" or self.majority_share == MAJORITY_SHARE,
            f"majority_share is a knob of feature 'mixed' only; feature {self.feature!r} got "
            f"{self.majority_share!r}",
        )
        for name in ("lr", "temperature", "warm_lr", "eval_temperature", "greedy_temperature"):
            need(
                math.isfinite(getattr(self, name)) and getattr(self, name) > 0,
                f"{name} must be > 0, got {getattr(self, name)!r}",
            )
        for name in ("clip_eps", "kl_coef", "entropy_coef", "grad_clip", "weight_decay"):
            need(
                math.isfinite(getattr(self, name)) and getattr(self, name) >= 0,
                f"{name} must be >= 0, got {getattr(self, name)!r}",
            )
        need(
            self.greedy_temperature <= 0.1,
            "greedy_temperature must be in (0, 0.1] (near-greedy decoding), got "
            f"{self.greedy_temperature!r}",
        )
        need(
            0 <= self.max_group_success <= 1,
            "max_group_success must be in [0, 1] (a fraction of the group), got "
            f"{self.max_group_success!r}",
        )
        need(
            self.ppo_epochs == 1 or self.clip_eps > 0,
            "ppo_epochs > 1 needs clip_eps > 0 (PPO ratio clipping)",
        )
        need(
            all(1 <= k <= self.eval_samples for k in self.eval_ks),
            f"every eval k in {list(self.eval_ks)} must be in "
            f"[1, eval_samples={self.eval_samples}]",
        )
        need(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"device must be 'cpu' or 'cuda[:i]', got {self.device!r}",
        )
        need(
            self.tier in ("easy", "hard"), f"unknown tier {self.tier!r}; expected 'easy' or 'hard'"
        )
        need(
            self.feature in ("first", "sum", "mixed"),
            f"unknown feature {self.feature!r}; expected 'first', 'sum' or 'mixed'",
        )
        need(
            self.lr_schedule in LR_SCHEDULES,
            f"unknown lr_schedule {self.lr_schedule!r}; expected one of {LR_SCHEDULES}",
        )
        need(
            self.eval_split in ("heldout", "validation"),
            f"unknown eval_split {self.eval_split!r}; expected 'heldout' or 'validation'",
        )
        from .tasks import TASKS  # registered task names (the CLI may also know others)

        need(
            self.task in TASKS or self.task.startswith("nl:"),
            f"unknown task {self.task!r}; expected one of {sorted(TASKS)}",
        )
        need(
            self.maze_size >= 5 and self.maze_size % 2 == 1,
            f"maze_size must be odd and >= 5, got {self.maze_size!r}",
        )

    def run_name(self) -> str:
        k = f"k{self.k}" if self.method == "pkpo" else self.method
        if advantages.spec(self.method).takes_k and self.method != "pkpo":
            k = f"{self.method}-k{self.k}"
        # tier and feature only describe the synthetic hidden-rule tasks, not the nl: word problems
        task = (
            self.task
            if self.task.startswith("nl:")
            else f"{self.task}{self.maze_size}"
            if self.task.startswith("maze")
            else f"{self.task}-{self.tier}-{self.feature}"
        )
        return (
            f"{task}__{k}__{self.baseline}__s{self.seed}".replace(">", "")
            .replace("@", "at")
            .replace(":", "-")
        )


# Presets: a dict of TrainConfig overrides.
PRESETS = {
    # the d=96, 3-layer GPT on the hidden-rule task (the "mixed" law, 6-digit strings); 16 prompts x
    # 16 samples, 300 steps
    "cpu": {},
    # the first demo's setting (unlearnable feature, 256 training problems, 100 steps of 8 prompts x
    # 16 samples): kept for the diagnosis in docs/results.md of why it could not show PKPO raising
    # pass@k
    "sum": {
        "feature": "sum",
        "steps": 100,
        "prompts_per_step": 8,
        "n_train": 256,
        "eval_every": 50,
        "eval_samples": 16,
        "checkpoint_every": 50,
    },
    # the demo (docs/results.md): a d=64 GPT (0.16 M parameters) on the "mixed" task (5-digit
    # strings), fresh training problems, stratified validation and held-out sets; 300 steps of 16
    # prompts x 16 samples at lr 3e-4 with cosine decay; evaluation of 128 held-out problems every
    # 60 steps and of all 512 at the end
    "demo": {
        "feature": "mixed",
        "length": 5,
        "max_new_tokens": 7,
        "n_train": 20000,
        "n_validation": 512,
        "n_heldout": 512,
        "d_model": 64,
        "warm_steps": 1200,
        "demo_uniform": 0.1,
        "steps": 300,
        "prompts_per_step": 16,
        "n": 16,
        "lr": 3e-4,
        "lr_schedule": "cosine",
        "eval_every": 60,
        "eval_problems": 128,
        "final_eval_problems": 512,
        "eval_samples": 16,
        "checkpoint_every": 60,
    },
    # ~1 minute smoke test
    "quick": {
        "feature": "mixed",
        "length": 5,
        "max_new_tokens": 7,
        "d_model": 64,
        "demo_uniform": 0.1,
        "warm_steps": 80,
        "steps": 12,
        "prompts_per_step": 8,
        "n": 8,
        "eval_every": 4,
        "eval_problems": 16,
        "final_eval_problems": 32,
        "eval_samples": 16,
        "checkpoint_every": 0,
        "n_train": 256,
        "n_heldout": 32,
        "n_validation": 32,
    },
    # the maze benchmark (python -m pkpo.rl.sweeps.maze; docs/rl.md, "The maze task"): 9x9 Prim's
    # mazes, a d=128, 4-layer GPT (0.83 M parameters), 400 warm-start steps of 32 shortest paths,
    # 100 RL steps of 4 fresh mazes x 32 samples (n = 32, so that k = 16 < n, as MaxRL's k = 16 < n
    # = 128); evaluation of 32 held-out mazes every 25 steps and of 256 x 32 samples at the end
    "maze": {
        "task": "maze",
        "maze_size": 9,
        "d_model": 128,
        "n_layer": 4,
        "n_head": 4,
        "warm_steps": 400,
        "warm_batch": 32,
        "warm_lr": 1e-3,
        "steps": 100,
        "prompts_per_step": 4,
        "n": 32,
        "max_new_tokens": 32,
        "n_train": 100_000,
        "n_validation": 256,
        "n_heldout": 256,
        "eval_every": 25,
        "eval_problems": 32,
        "final_eval_problems": 256,
        "eval_samples": 32,
        "eval_ks": (1, 2, 4, 8, 16, 32),
        "checkpoint_every": 25,
        "tensorboard": False,
    },
    # sized for about 10 minutes per run on one H100 (not runnable on the CPU machines; see
    # docs/rl.md)
    "gpu": {
        "device": "cuda",
        "d_model": 256,
        "n_layer": 6,
        "n_head": 8,
        "warm_steps": 3000,
        "warm_batch": 256,
        "steps": 1500,
        "prompts_per_step": 64,
        "n": 16,
        "n_train": 4096,
        "n_heldout": 512,
        "eval_problems": 512,
        "eval_every": 100,
        "checkpoint_every": 100,
        "threads": 4,
    },
}

# the runs of `pkpo demo`: the pass@1 baseline k1, GRPO (a pass@1 baseline that is not PKPO), PKPO
# at k = 8 and the anneal 8 -> 1; four runs, so two workers finish them in two rounds (the 5-minute
# budget of `make demo`). k4 is in the multi-seed study of tools/results.py (its RESULTS_RUNS).
DEMO_RUNS = ["k1", "grpo", "k8", "anneal"]
