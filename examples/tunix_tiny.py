"""PKPO in Tunix's GRPO learner on a tiny, locally built Qwen3 (CPU, JAX, no downloads, ~2 min).

The task: the prompt is three letters and a colon ("cag:"); a 3-character completion is correct
if it contains the prompt's first letter. The rule is never stated; the policy must find it from
the reward. Prompts are split into training and held-out sets (disjoint letter triples). The
random-init policy gets it right by luck a fraction of the time, so pass@1 is low and pass@4
higher. The script trains the same model twice, with PKPO at k = 4 and at k = 1 (the same
learning rate and steps, ``scale="mean_abs"``), and prints held-out pass@1 and pass@4 before and
after each run.

    .venv/bin/python examples/tunix_tiny.py              # both runs, a table at the end
    .venv/bin/python examples/tunix_tiny.py --steps 20   # a quicker smoke run

Everything is built here: a character-level tokenizer (``PreTrainedTokenizerFast``), Tunix's own
``models/qwen3`` class with a tiny config and random weights, a one-device CPU mesh, Tunix's
vanilla rollout. The training loop is Tunix's ``GRPOLearner`` (``PKPOGRPOLearner`` publishes the
step to the estimator) with ``advantage_estimator="pkpo"`` and a loss summed over each sequence
(``loss_agg_mode="seq-mean-token-sum"``), no KL (``beta=0``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

LETTERS = "abcdefgh"
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]


def build_tokenizer():
    """Character-level HF tokenizer: one token per letter, ':' and pad/eos/bos/unk (13 tokens)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + list(LETTERS) + [":"])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


def build_mesh():
    """A one-device ("fsdp", "tp") mesh. Auto axes: jax 0.10's default (Explicit) breaks Qwen3."""
    import jax

    return jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def build_model(vocab_size: int, seed: int = 0, embed_dim: int = 64):
    """Tunix's Qwen3 with 2 layers, 4 heads of 16, 2 KV heads, random init (75k params at 64).

    Qwen3 initialises its MLP kernels to zeros (it expects loaded weights), and an all-zero MLP
    gets no gradient; those kernels are redrawn as N(0, 1/fan_in).
    """
    import jax
    from flax import nnx
    from tunix.models.qwen3 import model as qwen3

    config = qwen3.ModelConfig(
        num_layers=2,
        vocab_size=vocab_size,
        embed_dim=embed_dim,
        hidden_dim=2 * embed_dim,
        num_heads=4,
        head_dim=16,
        num_kv_heads=2,
        rope_theta=10_000,
        norm_eps=1e-6,
        use_tied_embedding=True,
    )
    model = qwen3.Qwen3(config, rngs=nnx.Rngs(seed))
    params = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.PRNGKey(seed + 1), len(jax.tree.leaves(params))))

    def redraw_zeros(x):
        key = next(keys)
        if x.ndim < 2 or bool(jax.numpy.any(x)):
            return x
        return jax.random.normal(key, x.shape, x.dtype) * x.shape[0] ** -0.5

    nnx.update(model, jax.tree.map(redraw_zeros, params))
    return model


def split_prompts(seed: int = 0, held_out: int = 64):
    """All 512 letter triples as prompts "xyz:", shuffled and split into (train, held-out)."""
    triples = ["".join(t) + ":" for t in itertools.product(LETTERS, repeat=3)]
    order = np.random.default_rng(seed).permutation(len(triples))
    prompts = [triples[i] for i in order]
    return prompts[held_out:], prompts[:held_out]


def is_correct(prompt: str, completion: str) -> bool:
    return prompt[0] in completion


def first_letter_reward(prompts, completions, **kwargs):
    """Binary reward: 1.0 if the completion contains the prompt's first letter."""
    return [float(is_correct(p, c)) for p, c in zip(prompts, completions)]


def build_cluster(
    model,
    tokenizer,
    *,
    max_steps: int,
    learning_rate: float,
    max_new_tokens: int = 3,
):
    """An RLCluster on one CPU mesh: actor = rollout (shared weights), vanilla rollout, adamw.

    Sampling at temperature 1 with a new seed at every rollout call (:func:`vary_rollout_seed`).
    """
    import optax
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.rollout import base_rollout

    mesh = build_mesh()
    roles = rl_cluster_lib.Role
    rollout = base_rollout.RolloutConfig(
        max_tokens_to_generate=max_new_tokens,
        max_prompt_length=8,
        kv_cache_size=32,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        seed=None,
    )
    config = rl_cluster_lib.ClusterConfig(
        role_to_mesh={roles.ACTOR: mesh, roles.REFERENCE: mesh, roles.ROLLOUT: mesh},
        rollout_engine="vanilla",
        offload_to_cpu=False,
        training_config=rl_cluster_lib.RLTrainingConfig(
            actor_optimizer=optax.adamw(learning_rate, weight_decay=0.0),
            eval_every_n_steps=10**9,
            max_steps=max_steps,
            pbar_description=None,
        ),
        rollout_config=rollout,
    )
    cluster = rl_cluster_lib.RLCluster(actor=model, tokenizer=tokenizer, cluster_config=config)
    vary_rollout_seed(cluster)
    return cluster


def vary_rollout_seed(cluster, start: int = 1) -> None:
    """Give every rollout call whose config has ``seed=None`` a new seed (1, 2, 3, ...).

    Tunix's vanilla sampler uses the rollout config's seed as is on every call (``None`` means
    ``PRNGKey(0)``): every step would redraw the same random numbers, and the agentic learner,
    which generates each of a group's G samples in its own call, would get G identical samples.
    """
    import dataclasses
    import threading

    rollout, counter, lock = cluster.rollout, itertools.count(start), threading.Lock()
    generate = rollout.generate

    def generate_with_fresh_seed(prompts, rollout_config, **kwargs):
        if rollout_config.seed is None:
            with lock:
                seed = next(counter)
            rollout_config = dataclasses.replace(rollout_config, seed=seed)
        return generate(prompts, rollout_config, **kwargs)

    rollout.generate = generate_with_fresh_seed


def prompt_batches(prompts, batch_prompts: int, steps: int, seed: int = 0):
    """``steps`` batches {"prompts": array} of ``batch_prompts`` prompts drawn from ``prompts``.

    The prompts must be one numpy array (a pytree leaf): Tunix repeats every leaf G times, and
    would repeat each string of a Python list into an array of its own.
    """
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield {"prompts": rng.choice(np.array(prompts), size=batch_prompts, replace=False)}


def measure_pass_at_k(cluster, prompts, ks=(1, 4), n: int = 16, seed: int = 12345) -> dict:
    """Held-out unbiased pass@k (``pkpo.pass_at_k``) from n samples per prompt, temperature 1."""
    import dataclasses

    import pkpo

    config = cluster.cluster_config.rollout_config
    eval_config = dataclasses.replace(config, seed=seed)
    texts = cluster.rollout.generate([p for p in prompts for _ in range(n)], eval_config).text
    correct = np.array([is_correct(p, t) for p, t in zip(np.repeat(prompts, n), texts)])
    correct = correct.reshape(len(prompts), n)
    return {k: float(np.mean(pkpo.pass_at_k(correct, k))) for k in ks}


def train_once(k: int, args, train, held_out) -> dict:
    """One run: fresh model and cluster, PKPO at this k; held-out pass@k before and after."""
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    from pkpo.integrations import tunix as pkpo_tunix

    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), seed=args.seed)
    cluster = build_cluster(model, tokenizer, max_steps=args.steps, learning_rate=args.lr)
    before = measure_pass_at_k(cluster, held_out, ks=(1, 4))
    pkpo_tunix.register(k=k, scale="mean_abs")
    config = GRPOConfig(
        advantage_estimator="pkpo",
        num_generations=args.num_generations,
        num_iterations=1,
        beta=0.0,
        epsilon=0.2,
        loss_agg_mode="seq-mean-token-sum",
    )
    learner = pkpo_tunix.PKPOGRPOLearner(
        rl_cluster=cluster, algo_config=config, reward_fns=first_letter_reward
    )
    start = time.perf_counter()
    learner.train(prompt_batches(train, args.batch_prompts, args.steps, seed=args.seed))
    seconds = time.perf_counter() - start
    after = measure_pass_at_k(cluster, held_out, ks=(1, 4))
    return {"k": k, "before": before, "after": after, "train_seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="GRPO steps per run")
    parser.add_argument("--batch-prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--num-generations", type=int, default=8, help="n, samples per prompt")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ks", default="4,1", help="the k of each run, comma-separated")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    train, held_out = split_prompts(args.seed)
    results = [train_once(int(k), args, train, held_out) for k in args.ks.split(",")]

    print(
        f"\nheld-out pass@k ({len(held_out)} prompts x 16 samples), {args.steps} steps of "
        f"{args.batch_prompts} prompts x {args.num_generations}, lr {args.lr}, seed {args.seed}"
    )
    print("| run | pass@1 before | pass@1 after | pass@4 before | pass@4 after | train s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| PKPO k={r['k']} | {r['before'][1]:.3f} | {r['after'][1]:.3f} | "
            f"{r['before'][4]:.3f} | {r['after'][4]:.3f} | {r['train_seconds']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
