"""The ms-swift adapter against the real ms-swift 4.6.0: GRPO end to end on CPU, tiny local Llama.

ms-swift pins ``trl<1.0``, so it cannot share the test venv with trl 1.16: ``make test`` builds a
second venv (``.venv-swift``) and runs this file there, and only there (the main run leaves it
out; see the Makefile).

Tested against the real package: ``swift.pipelines.rlhf_main`` (argument parsing, ms-swift's
model and template loading, its trainer table) trains the patched ``PKPOGRPOTrainer`` for a few
steps (ms-swift's rollout with its transformers engine, its reward functions, gathering, its
GRPO loss and optimizer step); every advantage step is checked against :mod:`pkpo.advantages`
on the rewards ms-swift gathered. Nothing is downloaded: the model is a random-init Llama with a
character-level tokenizer built here. Not run here: ms-swift's vLLM rollout, Megatron and Ray
backends, and more than one process.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from swift.arguments import RLHFArguments
from swift.pipelines import rlhf_main
from swift.rewards import ORM, orms
from swift.trainers import TrainerFactory

from pkpo import advantages
from pkpo.integrations import ms_swift

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("trl_tiny", ROOT / "examples" / "trl_tiny.py")
trl_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trl_tiny)

G = 4
UNSCORABLE = "a"  # completions starting with it get no reward


class ContainsLetter(ORM):
    """1 if the completion contains the prompt's letter, else 0; None (unscorable) if it starts
    with UNSCORABLE."""

    def __call__(self, completions, messages, **kwargs):
        return [
            None if c.startswith(UNSCORABLE) else float(m[0]["content"][0] in c)
            for c, m in zip(completions, messages)
        ]


class LetterShare(ORM):
    """The share of the prompt's letter in the completion; None (unscorable) if it starts with
    UNSCORABLE or is empty: rows where both functions return None have no reward at all."""

    def __call__(self, completions, messages, **kwargs):
        return [
            None if c.startswith(UNSCORABLE) or not c else c.count(m[0]["content"][0]) / len(c)
            for c, m in zip(completions, messages)
        ]


orms["pkpo_test_contains"] = ContainsLetter
orms["pkpo_test_share"] = LetterShare


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random-init Llama (19k parameters) whose tokenizer has a plain chat template."""
    directory = tmp_path_factory.mktemp("tiny-llama-swift")
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    return trl_tiny.build_tiny_model(str(directory), max_positions=64, chat_template=template)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "letters.jsonl"
    with open(path, "w") as out:
        out.writelines(
            json.dumps({"messages": [{"role": "user", "content": f"{letter}:"}]}) + "\n"
            for letter in trl_tiny.LETTERS * 2
        )
    return str(path)


@pytest.fixture(autouse=True)
def _unpatched():
    yield
    ms_swift.unpatch()


@pytest.fixture
def records(monkeypatch):
    """Every advantage step of PKPOGRPOTrainer: the gathered rewards, its k and its result."""
    seen = []
    original = ms_swift.PKPOGRPOTrainer._compute_advantages

    def recording(self, samples, rewards_per_func, batch_encoded_inputs):
        result = original(self, samples, rewards_per_func, batch_encoded_inputs)
        seen.append(
            {
                "trainer": self,
                "rewards": rewards_per_func.clone(),
                "k": self.pkpo_k(),
                "advantages": result.clone(),
            }
        )
        return result

    monkeypatch.setattr(ms_swift.PKPOGRPOTrainer, "_compute_advantages", recording)
    return seen


def _cpu_args(tmp_path):
    """What a CPU run on the tiny model needs besides the usual GRPO arguments."""
    return {
        "model_type": "llama",
        "template": "dummy",
        "max_completion_length": 3,
        "learning_rate": 1e-2,
        "temperature": 1.0,
        "save_strategy": "no",
        "report_to": [],
        "output_dir": str(tmp_path / "out"),
        "tuner_type": "full",
        "torch_dtype": "float32",
        "split_dataset_ratio": 0,
        "eval_strategy": "no",
        "use_cpu": True,
        "logging_steps": 1,
        "seed": 0,
        "check_model": False,
        "dataloader_num_workers": 0,
    }


def _args(model_dir, dataset, tmp_path, **overrides):
    args = {
        "rlhf_type": "grpo",
        "model": model_dir,
        "dataset": [dataset],
        "reward_funcs": ["pkpo_test_contains", "pkpo_test_share"],
        "num_generations": G,
        "per_device_train_batch_size": 8,
        "max_steps": 2,
        "loss_type": "dapo",
        **_cpu_args(tmp_path),
    }
    args.update(overrides)
    return RLHFArguments(**args)


def _expected(record, method, scale, **params):
    """The estimator on ms-swift's gathered rewards: weighted nansum per row, groups of G
    consecutive rows, rows without any reward left out."""
    rewards_per_func = record["rewards"].double()
    scorable = ~torch.isnan(rewards_per_func).all(dim=1)
    rewards = torch.nan_to_num(rewards_per_func, nan=0.0).sum(dim=1)  # reward_weights are 1
    if record["k"] is not None:
        params["k"] = record["k"]
    return advantages.compute(
        method, rewards.view(-1, G), mask=scorable.view(-1, G), scale=scale, **params
    ).reshape(-1)


def test_grpo_trains_on_pkpo_with_a_k_schedule(model_dir, dataset, tmp_path, records):
    from transformers import AutoModelForCausalLM

    ms_swift.patch(schedule="3->2@1")
    assert TrainerFactory.TRAINER_MAPPING["grpo"] == ms_swift.TRAINER_PATH
    rlhf_main(_args(model_dir, dataset, tmp_path))

    assert [record["k"] for record in records] == [3, 2]  # state.global_step 0, then 1
    trainer = records[0]["trainer"]
    assert type(trainer) is ms_swift.PKPOGRPOTrainer
    assert trainer.state.global_step == 2
    for record in records:
        assert record["rewards"].shape == (8, 2)
        np.testing.assert_allclose(
            record["advantages"].numpy(),
            _expected(record, "pkpo", "mean_abs").numpy(),
            rtol=1e-5,
            atol=1e-7,
        )
    unscorable = torch.cat([torch.isnan(r["rewards"]).all(dim=1) for r in records])
    assert unscorable.any()  # the None rewards were exercised ...
    assert not torch.cat([r["advantages"] for r in records])[unscorable].any()  # ... and got 0
    logged = [float(entry["pkpo/k"]) for entry in trainer.state.log_history if "pkpo/k" in entry]
    assert logged == [3.0, 2.0]
    initial = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    trained = {name: value.detach() for name, value in trainer.model.named_parameters()}
    assert trained.keys() <= initial.keys()
    assert any(not torch.equal(initial[name], value) for name, value in trained.items())


def test_any_estimator_by_name_binary_maxrl(model_dir, dataset, tmp_path, records):
    ms_swift.patch(method="maxrl", scale="none")
    rlhf_main(_args(model_dir, dataset, tmp_path, reward_funcs=["pkpo_test_contains"], max_steps=1))
    (record,) = records
    assert record["k"] is None
    np.testing.assert_allclose(
        record["advantages"].numpy(), _expected(record, "maxrl", "none").numpy(), rtol=1e-5
    )
    assert set(record["rewards"].nan_to_num(0.0).unique().tolist()) <= {0.0, 1.0}


def _docs_block() -> str:
    """The Python block of the ms-swift section of docs/integrations.md."""
    text = (ROOT / "docs" / "integrations.md").read_text()
    section = text[text.index("## ms-swift") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def test_the_docs_python_block_runs_on_the_tiny_model(model_dir, dataset, tmp_path, records):
    code = _docs_block()
    for old, new in {
        '"Qwen/Qwen2.5-0.5B-Instruct", "AI-MO/NuminaMath-TIR#1000"': f"{model_dir!r}, {dataset!r}",
        'schedule="8->2@200"': 'schedule="3->2@1"',
        'reward_funcs=["accuracy"]': 'reward_funcs=["pkpo_test_contains", "pkpo_test_share"]',
        "num_generations=8": f"num_generations={G}",
        "max_steps=400,": "max_steps=2, **CPU_ARGS,",
    }.items():
        assert old in code, old
        code = code.replace(old, new)
    namespace = {"CPU_ARGS": _cpu_args(tmp_path)}
    exec(compile(code, "docs/integrations.md", "exec"), namespace)  # noqa: S102 - the docs block
    assert [record["k"] for record in records] == [3, 2]
    for record in records:
        np.testing.assert_allclose(
            record["advantages"].numpy(),
            _expected(record, "pkpo", "mean_abs").numpy(),
            rtol=1e-5,
            atol=1e-7,
        )


def test_kl_in_reward_and_too_few_samples_are_refused(model_dir, dataset, tmp_path):
    ms_swift.patch(k=2)
    with pytest.raises(ValueError, match="kl_in_reward"):
        rlhf_main(_args(model_dir, dataset, tmp_path, kl_in_reward=True, beta=0.04))
    ms_swift.patch(k=8)
    with pytest.raises(ValueError, match="num_generations=4 .* too few"):
        rlhf_main(_args(model_dir, dataset, tmp_path))


def test_patch_points_the_trainer_table_at_the_subclass_and_unpatch_restores_it():
    original = TrainerFactory.TRAINER_MAPPING["grpo"]
    ms_swift.patch(k=2)
    ms_swift.patch(k=3)
    assert TrainerFactory.TRAINER_MAPPING["grpo"] == "pkpo.integrations.ms_swift.PKPOGRPOTrainer"
    ms_swift.unpatch()
    assert TrainerFactory.TRAINER_MAPPING["grpo"] == original
    with pytest.raises(ValueError, match="patch"):
        ms_swift._options()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "nope"}, "unknown advantage estimator"),
        ({}, "set k"),
        ({"method": "rloo", "k": 2}, "takes no k"),
        ({"k": 2, "scale": "big"}, "unknown scale"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    original = TrainerFactory.TRAINER_MAPPING["grpo"]
    with pytest.raises(ValueError, match=message):
        ms_swift.patch(**kwargs)
    assert TrainerFactory.TRAINER_MAPPING["grpo"] == original
