"""Speed of the CPU RL setting: sampled tokens/s and RL steps/min of the GPT policy.

Usage::

    .venv/bin/python benchmarks/rl_speed.py  # demo preset (d=96, 3 layers) and a ~1M-param model
    .venv/bin/python benchmarks/rl_speed.py --threads 2 --steps 30

For each model size it times (after warm-up) the three parts of an RL step at 64 completions of 32
tokens (4 prompts x 16 samples, ``max_new_tokens = 32`` with EOS suppressed so every completion is
32 tokens long) and at the demo batch (16 prompts x 16 samples of the hidden-rule task), then a full
trainer step (``pkpo.rl.training.trainer.train``, no evaluation). Prints a table; numbers depend on
the machine and its load.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from pkpo.rl.policies.gpt import EOS, GPT, GPTConfig
from pkpo.rl.tasks import make_task
from pkpo.rl.training.trainer import TrainConfig, train


def time_fixed_length(model: GPT, prompts: int, n: int, tokens: int, reps: int) -> dict:
    """Sampling and PG-step time at exactly ``tokens`` generated tokens per completion."""
    never = model._never.clone()
    model._never[EOS] = True  # force full-length completions for a fixed workload
    gen = torch.Generator().manual_seed(0)
    batch = [model.encode("123456:?>")] * prompts
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.sample(batch, n, tokens, generator=gen)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        s = model.sample(batch, n, tokens, generator=gen)
    t_sample = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        loss = -(torch.randn(prompts * n) * model.sequence_logprobs(s)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    t_update = (time.perf_counter() - t0) / reps
    model._never.copy_(never)
    rows = prompts * n
    return {
        "sample_s": t_sample,
        "update_s": t_update,
        "tokens_per_s": rows * tokens / t_sample,
        "steps_per_min": 60 / (t_sample + t_update),
    }


def time_trainer(cfg: GPTConfig, steps: int) -> float:
    """RL steps per minute of the real trainer on the hidden-rule task (16 prompts x 16 samples)."""
    torch.manual_seed(0)
    model = GPT(cfg)
    task = make_task("hidden-rule")
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            steps=steps, eval_problems=0, checkpoint_every=0, tensorboard=False, k="4", out_dir=tmp
        )
        t0 = time.perf_counter()
        train(tc, model, task, progress=False)
        return 60 * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = {
        "demo (d=96, L=3)": GPTConfig(),
        "~1M (d=160, L=3)": GPTConfig(d_model=160, n_layer=3, n_head=4),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(
        "| model | params | workload | sample s | update s | sampled tok/s | RL steps/min "
        "(sample+update) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, cfg in sizes.items():
        model = GPT(cfg)
        for prompts, n, tokens in ((4, 16, 32), (16, 16, 7)):
            r = time_fixed_length(model, prompts, n, tokens, args.reps)
            print(
                f"| {name} | {model.num_params() / 1e6:.2f}M | {prompts}x{n} completions x "
                f"{tokens} tok | {r['sample_s']:.3f} | {r['update_s']:.3f} | "
                f"{r['tokens_per_s']:.0f} | {r['steps_per_min']:.0f} |"
            )
    for name, cfg in sizes.items():
        print(
            f"full trainer step, {name}, 16x16 hidden-rule, k=4: "
            f"{time_trainer(cfg, args.steps):.0f} RL steps/min"
        )


if __name__ == "__main__":
    main()
