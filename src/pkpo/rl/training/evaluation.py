"""Held-out evaluation of a policy: unbiased pass@k (binary) or maxg@k (continuous), with standard
errors.

For each of P problems we draw ``samples`` completions; :func:`pkpo.metrics.pass_at_k_report`
(binary rewards, paper eq. 3) or :func:`pkpo.metrics.maxg_at_k_report` (eq. 12) gives the mean over
problems of the per-problem unbiased estimate and its standard error std / sqrt(P) over problems
(:func:`pkpo.metrics.standard_error`: the spread of the per-problem estimates, NaN for one problem;
it does not include seed-to-seed variation).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pkpo.metrics import maxg_at_k_report, pass_at_k_report, standard_error

from .. import seeding
from ..interfaces import Policy, Problem, Samples, Task


def score_samples(
    task: Task, problems: Sequence[Problem], policy: Policy, samples: Samples
) -> np.ndarray:
    """Rewards of a batch of samples as a (B, n) float array (prompt-major rows)."""
    texts = [
        policy.decode(row[m].tolist())
        for row, m in zip(samples.completion_ids, samples.completion_mask)
    ]
    n = samples.n
    return np.array(
        [
            [task.score(problems[j], texts[j * n + i]) for i in range(n)]
            for j in range(len(problems))
        ],
        dtype=np.float64,
    )


def _device_of(policy) -> torch.device:
    """The device of the policy's parameters (sampling generators must live there)."""
    try:
        return next(iter(policy.parameters())).device
    except StopIteration:
        return torch.device("cpu")


def _rewards(
    policy, problems, task, samples, max_new_tokens, temperature, gen, batch_prompts, on_batch=None
):
    """(P, samples) rewards of ``samples`` completions per problem at ``temperature``, in prompt
    batches; ``on_batch(chunk, samples_object)`` sees every batch (entropy, classes)."""
    rewards = []
    for start in range(0, len(problems), batch_prompts):
        chunk = problems[start : start + batch_prompts]
        s = policy.sample(
            [policy.encode(p.prompt) for p in chunk],
            samples,
            max_new_tokens,
            temperature,
            generator=gen,
        )
        rewards.append(score_samples(task, chunk, policy, s))
        if on_batch is not None:
            on_batch(chunk, s)
    return np.concatenate(rewards)


@torch.no_grad()
def evaluate(
    policy: Policy,
    problems: Sequence[Problem],
    task: Task,
    *,
    samples: int = 32,
    ks: Sequence[int] = (1, 2, 4, 8, 16),
    max_new_tokens: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    batch_prompts: int = 16,
    detail: bool = False,
    greedy_temperature: float | None = None,
    greedy_samples: int = 2,
) -> dict:
    """Unbiased held-out pass@k (or maxg@k) of ``policy`` on ``problems``.

    Returns a dict with, for each k in ``ks``, ``"pass@k"`` and ``"pass@k_se"`` (``"maxg@k"`` for
    continuous tasks; the SE is NaN for a single problem), plus ``reward_mean`` (the mean reward of
    a single sample), ``entropy`` (mean over samples of -log p(y | x): an unbiased estimate of the
    sequence-level entropy at temperature 1, in nats), ``num_problems`` and ``samples``.

    ``greedy_temperature`` (<= 0.1): also ``"greedy_pass@1"`` and its SE, pass@1 decoded
    near-greedily (``greedy_samples`` samples per problem at that temperature, from a generator of
    its own, so the numbers at ``temperature`` do not change), and ``greedy_temperature``.

    ``detail=True`` adds ``"detail"``: per problem (in order) its ``uid``, the number of samples
    with reward 1 (``successes``; pass@k for any k <= samples follows from it), for a task with
    continuous rewards also every sample's reward (``rewards``, ``greedy_rewards``: maxg@k for any
    k <= samples follows from them), and, when the task has ``category(problem)``,
    ``rule_of(problem)`` and ``classify(problem, completion)``, the problem's category and rule and
    how many of its samples fell in each class (``classes``: {class: [count per problem]}, e.g.
    which rule a sample executed, or ``invalid``).
    """
    problems = list(problems)
    if not problems:
        raise ValueError("evaluate needs at least one problem")
    ks = [int(k) for k in ks]
    if samples < 1 or any(k < 1 or k > samples for k in ks):
        raise ValueError(f"every k in ks={ks} must be in [1, samples={samples}]")
    if greedy_temperature is not None and not 0 < greedy_temperature <= 0.1:
        raise ValueError(f"greedy_temperature must be in (0, 0.1], got {greedy_temperature}")
    if greedy_temperature is not None and greedy_samples < 1:
        raise ValueError(f"greedy_samples must be >= 1, got {greedy_samples}")
    gen = seeding.torch_stream(seed, "eval", _device_of(policy))
    was_training = getattr(policy, "training", False)
    if hasattr(policy, "eval"):
        policy.eval()
    neg_logp, classes = [], []
    classify = getattr(task, "classify", None) if detail else None

    def observe(chunk, s):
        if classify is not None:
            texts = [
                policy.decode(r[m].tolist()) for r, m in zip(s.completion_ids, s.completion_mask)
            ]
            classes.extend(
                classify(p, texts[j * samples + i])
                for j, p in enumerate(chunk)
                for i in range(samples)
            )
        neg_logp.append(-policy.sequence_logprobs(s).float().cpu().numpy())

    greedy = None
    try:
        g = _rewards(
            policy,
            problems,
            task,
            samples,
            max_new_tokens,
            temperature,
            gen,
            batch_prompts,
            observe,
        )
        if greedy_temperature is not None:
            greedy_gen = seeding.torch_stream(seed, "greedy_eval", _device_of(policy))
            greedy = _rewards(
                policy,
                problems,
                task,
                greedy_samples,
                max_new_tokens,
                greedy_temperature,
                greedy_gen,
                batch_prompts,
            )
    finally:
        if was_training and hasattr(policy, "train"):
            policy.train()
    name = "pass" if task.binary else "maxg"
    report = (
        pass_at_k_report(g > 0.5, ks, n_bootstrap=0)
        if task.binary
        else maxg_at_k_report(g, ks, n_bootstrap=0)
    )
    out: dict = {"num_problems": len(problems), "samples": samples}
    for k in ks:  # in the caller's order (the report sorts them)
        out[f"{name}@{k}"], out[f"{name}@{k}_se"] = report[k].estimate, report[k].se
    if greedy is not None:
        per_problem = (greedy >= 1.0).mean(1) if task.binary else greedy.mean(1)
        out[f"greedy_{name}@1"] = float(per_problem.mean())
        out[f"greedy_{name}@1_se"] = standard_error(per_problem)
        out["greedy_temperature"] = float(greedy_temperature)
    out["reward_mean"] = float(g.mean())
    out["entropy"] = float(np.concatenate(neg_logp).mean())
    if detail:
        info: dict = {
            "uid": [p.uid for p in problems],
            "samples": samples,
            "successes": [int(c) for c in (g >= 1.0).sum(1)],
        }
        if greedy is not None:
            info["greedy_samples"] = greedy.shape[1]
            info["greedy_successes"] = [int(c) for c in (greedy >= 1.0).sum(1)]
        if not task.binary:
            info["rewards"] = g.tolist()
            if greedy is not None:
                info["greedy_rewards"] = greedy.tolist()
        for key in ("category", "rule_of"):
            if hasattr(task, key):
                info[key] = [getattr(task, key)(p) for p in problems]
        if classify is not None:
            labels = np.array(classes).reshape(len(problems), samples)
            info["classes"] = {
                c: [int(v) for v in (labels == c).sum(1)] for c in sorted(set(classes))
            }
        out["detail"] = info
    return out
