"""Speed of RL on the maze task: the trainer's sampling against the policy's plain forward pass.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/maze_speed.py            # sizes 7, 9, 11
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/maze_speed.py --sizes 9 --models 128x4

For each maze size and GPT size, on a batch of ``prompts`` training mazes x ``n`` samples:

- **sampled tok/s**: ``GPT.sample`` (what the trainer calls: prefill, then one token at a time with
  the KV cache), with EOS suppressed so that every completion has ``tokens`` tokens (a fixed
  workload);
- **plain forward tok/s** (the ceiling): the same completions scored by one plain batched forward
  pass over every row's prompt + completion without gradients (teacher forcing: all those logits at
  once). Sampling computes the same logits one position at a time, so on the same network it cannot
  beat a forward pass;
- **scoring tok/s**: ``sequence_logprobs`` without gradients, which runs each prompt once for its n
  samples (``GPT._shared_prompt``), as sampling does; it beats the plain pass because the prompt is
  most of the sequence;
- **update s**: one policy-gradient step through ``sequence_logprobs`` (forward + backward + AdamW),
  and **plain update s** the same step through the plain forward pass (every row runs its own
  prompt: the cost before the trainer shared each prompt's keys and values among its n samples);
- **trainer steps/min**: the real loop (``pkpo.rl.trainer.train``) on fresh mazes, from an untrained
  policy, no evaluation (completion lengths are the policy's own, capped at the task's
  ``max_new_tokens``).

One thread unless ``--threads``. Prints a markdown table; numbers depend on the machine and its
load.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from pkpo.rl.config import TrainConfig
from pkpo.rl.interfaces import left_pad, positions_from_mask
from pkpo.rl.policies.gpt import EOS, GPT, PAD, GPTConfig
from pkpo.rl.tasks.maze import MazeTask
from pkpo.rl.training.trainer import train


def model_for(task: MazeTask, width: int, layers: int) -> GPT:
    """A GPT of the given width and depth whose block fits the task's prompt and longest answer."""
    block = task.prompt_length() + 1 + task.max_new_tokens()
    return GPT(GPTConfig(d_model=width, n_layer=layers, n_head=4, block_size=block))


def time_sampling_and_forward(
    model: GPT, prompts: list[list[int]], n: int, tokens: int, reps: int
) -> dict:
    """Seconds per call of sampling (``tokens`` tokens each), the no-grad passes and the updates."""
    never = model._never.clone()
    model._never[EOS] = True  # fixed workload: every completion is ``tokens`` long
    gen = torch.Generator().manual_seed(0)
    try:
        samples = model.sample(prompts, n, tokens, generator=gen)  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            samples = model.sample(prompts, n, tokens, generator=gen)
        t_sample = (time.perf_counter() - t0) / reps
        with torch.no_grad():
            t0 = time.perf_counter()
            for _ in range(reps):
                plain_forward(model, samples)
            t_plain = (time.perf_counter() - t0) / reps
            model.sequence_logprobs(samples)
            t0 = time.perf_counter()
            for _ in range(reps):
                model.sequence_logprobs(samples)
            t_forward = (time.perf_counter() - t0) / reps
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        t0 = time.perf_counter()
        for _ in range(reps):
            loss = -(torch.randn(len(prompts) * n) * model.sequence_logprobs(samples)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_update = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for _ in range(
            reps
        ):  # the same step through the plain forward pass (every row runs its prompt)
            loss = -(torch.randn(len(prompts) * n) * plain_logprobs(model, samples)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_plain_update = (time.perf_counter() - t0) / reps
    finally:
        model._never.copy_(never)
    generated = len(prompts) * n * tokens
    return {
        "sample_s": t_sample,
        "plain_s": t_plain,
        "forward_s": t_forward,
        "update_s": t_update,
        "plain_update_s": t_plain_update,
        "sampled_tok_s": generated / t_sample,
        "plain_tok_s": generated / t_plain,
        "forward_tok_s": generated / t_forward,
    }


def plain_logprobs(model: GPT, samples) -> torch.Tensor:
    """log p(completion | prompt) per row through :func:`plain_forward` (scoring before sharing)."""
    ids, _ = left_pad(samples.prompt_ids, PAD)
    logits = plain_forward(model, samples)[:, ids.shape[1] - 1 : -1]
    logp = torch.log_softmax(logits, -1).gather(-1, samples.completion_ids[..., None]).squeeze(-1)
    return torch.where(samples.completion_mask, logp, 0.0).sum(1)


def plain_forward(model: GPT, samples) -> torch.Tensor:
    """Logits of one batched forward pass over every row's padded prompt + completion."""
    ids, mask = left_pad(samples.prompt_ids, PAD)
    ids, mask = ids.repeat_interleave(samples.n, 0), mask.repeat_interleave(samples.n, 0)
    key_mask = torch.cat([mask, torch.ones_like(samples.completion_mask)], 1)
    return model(
        torch.cat([ids, samples.completion_ids], 1), key_mask, positions_from_mask(key_mask)
    )


def trainer_steps_per_min(model: GPT, task: MazeTask, prompts: int, n: int, steps: int) -> float:
    """RL steps a minute of the real trainer loop (k = 4, no evaluation, no checkpoints)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            steps=steps,
            prompts_per_step=prompts,
            n=n,
            k="4",
            eval_problems=0,
            checkpoint_every=0,
            tensorboard=False,
            max_new_tokens=task.max_new_tokens(),
            out_dir=tmp,
        )
        t0 = time.perf_counter()
        train(cfg, model, task, progress=False)
        return 60 * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[7, 9, 11])
    parser.add_argument("--models", nargs="+", default=["128x4", "256x4"], help="WIDTHxLAYERS")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="trainer steps timed (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.prompts} prompts x {args.n} "
        "samples"
    )
    print(
        "| maze | model | params | prompt tok | generated tok | sample s | plain forward s | "
        "update s | plain update s | "
        "sampled tok/s | plain forward tok/s (ceiling) | sampled / ceiling | shared-prompt scoring "
        "tok/s | "
        "trainer steps/min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        task = MazeTask(size=size, n_validation=8, n_heldout=8)
        train_mazes = task.problems("train")
        # the typical answer: the mean shortest path of the validation mazes, plus done and EOS
        tokens = (
            round(sum(len(p.answer.shortest_path()) for p in task.problems("validation")) / 8) + 2
        )
        for spec in args.models:
            width, layers = (int(x) for x in spec.split("x"))
            torch.manual_seed(0)
            model = model_for(task, width, layers)
            prompts = [model.encode(train_mazes[i].prompt) for i in range(args.prompts)]
            r = time_sampling_and_forward(model, prompts, args.n, tokens, args.reps)
            spm = (
                trainer_steps_per_min(model, task, args.prompts, args.n, args.steps)
                if args.steps
                else float("nan")
            )
            print(
                f"| {size}x{size} | d={width}, L={layers} | {model.num_params() / 1e6:.2f}M | "
                f"{len(prompts[0])} | "
                f"{tokens} | {r['sample_s']:.3f} | {r['plain_s']:.3f} | {r['update_s']:.3f} | "
                f"{r['plain_update_s']:.3f} | "
                f"{r['sampled_tok_s']:.0f} | {r['plain_tok_s']:.0f} | "
                f"{r['sampled_tok_s'] / r['plain_tok_s']:.2f} | "
                f"{r['forward_tok_s']:.0f} | {spm:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
