"""Run the real OpenRLHF 0.11.2 on a CPU machine, for tests/integrations/test_openrlhf.py.

Two things stand in for what needs a GPU; everything else is the installed openrlhf wheel:

* :func:`write_stubs` writes stand-ins for exactly the three CUDA-only packages OpenRLHF imports
  at module level: ``flash_attn``, ``deepspeed`` and ``vllm`` (``openrlhf/trainer/ray/__init__``
  imports vllm unconditionally). Put the directory on ``sys.path`` (:func:`stubbed_imports`) and
  on ``PYTHONPATH`` for Ray workers. Every attribute of a stub is a placeholder that raises when
  called, so code that really needs one (DeepSpeed engines, vLLM generation, flash attention)
  fails loudly instead of doing something else.
* :class:`CPUModelGroup` takes the place of OpenRLHF's ``RayActorGroup`` of policy-model actors
  (DeepSpeed models on GPUs): its "forward" returns zero log-probs, "append" keeps the
  experiences the trainer hands over after the advantage step, and "fit" returns them.

:func:`parse_args` runs the real ``openrlhf.cli.train_ppo_ray`` parser and its argument checks.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from pathlib import Path
from unittest import mock

STUBBED = ("flash_attn", "deepspeed", "vllm")

# The submodules OpenRLHF 0.11.2 imports from them (grep of the wheel); a missing one is a
# ModuleNotFoundError, never a silent success.
SUBMODULES = (
    "flash_attn.bert_padding",
    "flash_attn.utils",
    "flash_attn.utils.distributed",
    "flash_attn.ops",
    "flash_attn.ops.triton",
    "flash_attn.ops.triton.cross_entropy",
    "deepspeed.runtime",
    "deepspeed.runtime.zero",
    "deepspeed.runtime.zero.partition_parameters",
    "deepspeed.runtime.zero.offload_config",
    "deepspeed.checkpoint",
    "deepspeed.checkpoint.utils",
    "vllm.inputs",
    "vllm.utils",
    "vllm.distributed",
    "vllm.distributed.utils",
    "vllm.distributed.device_communicators",
    "vllm.distributed.device_communicators.pynccl",
)

STUB_SOURCE = '''"""CPU test stub of the CUDA-only {name!r} (openrlhf_harness.py)."""


class _Unavailable:
    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{{self._name}} is a CPU test stub: it needs the real CUDA package")

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Unavailable(f"{{self._name}}.{{attribute}}")

    def __repr__(self):
        return f"<stub {{self._name}}>"


def __getattr__(attribute):
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return _Unavailable(f"{name}.{{attribute}}")
'''

ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"


def write_stubs(root) -> Path:
    """Write the stub packages under ``root`` and return it (to put on sys.path / PYTHONPATH)."""
    root = Path(root)
    for name in (*STUBBED, *SUBMODULES):
        package = root.joinpath(*name.split("."))
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(STUB_SOURCE.format(name=name))
    return root


def _imported(prefixes) -> list[str]:
    return [name for name in sys.modules if name.split(".")[0] in prefixes]


@contextlib.contextmanager
def stubbed_imports(root):
    """``sys.path`` with the stubs in ``root``; afterwards openrlhf and the stubs are unimported."""
    root = str(root)
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name in _imported({"openrlhf", *STUBBED}):
            del sys.modules[name]


class _Parsed(Exception):
    def __init__(self, args):
        super().__init__("parsed")
        self.parsed = args


def stop_at_train(args):
    """Stands in for ``get_strategy``, the first call of ``train(args)`` after ``ray.init``."""
    raise _Parsed(args)


def parse_args(argv: list[str]):
    """The arguments ``train_ppo_ray`` hands to ``train()``: its real parser and checks, no Ray."""
    import openrlhf.utils
    import ray

    with (
        mock.patch.object(openrlhf.utils, "get_strategy", stop_at_train),
        mock.patch.object(ray, "is_initialized", lambda: True),  # train() skips ray.init
        mock.patch.object(sys, "argv", [ENTRY_MODULE, *argv]),
    ):
        try:
            runpy.run_module(ENTRY_MODULE, run_name="__main__", alter_sys=True)
        except _Parsed as parsed:
            return parsed.parsed
    raise AssertionError("train_ppo_ray returned without calling train(args)")


@contextlib.contextmanager
def launched_args():
    """Run code that ends in ``train_ppo_ray``'s ``train(args)``; yields a dict that gets ``args``.

    ``train()`` is stopped at its first call after ``ray.init``, so nothing needs a GPU.
    """
    import openrlhf.utils

    seen: dict = {}
    with mock.patch.object(openrlhf.utils, "get_strategy", stop_at_train):
        try:
            yield seen
        except _Parsed as parsed:
            seen["args"] = parsed.parsed


class CPUModelGroup:
    """Stands in for OpenRLHF's ``RayActorGroup`` of policy-model actors (GPU DeepSpeed models).

    Only what ``BasePPOTrainer.train_step`` calls: ``async_run_method_batch("forward", ...)``
    (zero log-probs, one tensor per micro-batch), ``async_run_method_batch("append",
    experience=...)`` (keeps the experiences after the advantage step) and
    ``async_run_method("fit", ...)`` (returns, as the PPO status, the kept experiences' fields).
    """

    def __init__(self) -> None:
        self.appended: list = []

    def async_run_method_batch(self, method_name, **kwargs):
        import ray
        import torch

        if method_name == "forward":
            masks = kwargs["action_mask"]
            return [ray.put([torch.zeros(mask.shape, dtype=torch.float32) for mask in masks])]
        if method_name == "append":
            self.appended.extend(kwargs["experience"])
            return []
        raise NotImplementedError(f"CPUModelGroup has no {method_name!r}")

    def async_run_method(self, method_name, **kwargs):
        import ray

        if method_name == "fit":
            status = {"pkpo_test/experiences": [_fields(e) for e in self.appended]}
            self.appended = []
            return [ray.put(status)]
        if method_name == "empty_cache":
            return []
        raise NotImplementedError(f"CPUModelGroup has no {method_name!r}")


def _fields(experience) -> dict:
    return {
        "index": list(experience.index),
        "rewards": experience.rewards,
        "returns": experience.returns,
        "advantages": experience.advantages,
        "action_mask": experience.action_mask,
        "info": dict(experience.info),
    }


def rollout_samples(rewards, response_lengths=None, prompt_length: int = 3, vocab: int = 8):
    """One real ``Experience`` per sample, as OpenRLHF's SamplesGenerator makes them.

    ``rewards`` is a flat list in prompt order (a prompt's samples consecutive); Python ints give
    int64 rewards, as a remote reward function returning ints does.
    """
    import torch
    from openrlhf.trainer.ppo_utils.experience import Experience

    samples = []
    for row, reward in enumerate(rewards):
        length = 2 + row % 3 if response_lengths is None else response_lengths[row]
        total = prompt_length + length
        tokens = torch.arange(row, row + total) % vocab + 4  # above the special tokens
        action_mask = torch.zeros(total - 1, dtype=torch.bool)
        action_mask[prompt_length - 1 :] = True
        reward = torch.tensor([reward])
        samples.append(
            Experience(
                sequences=tokens[None],
                attention_mask=torch.ones(1, total, dtype=torch.long),
                action_mask=action_mask[None],
                rewards=reward,
                response_length=torch.tensor([length]),
                truncated=torch.tensor([False]),
                total_length=torch.tensor([float(total)]),
                prompts=[f"prompt {row}"],
                labels=[""],
                info={"reward": reward.clone()},
            )
        )
    return samples
