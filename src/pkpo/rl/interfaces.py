"""The two contracts the RL trainer is written against: a Policy and a Task.

Anything that satisfies them trains through the same loop: the from-scratch GPT with a KV cache
(:mod:`pkpo.rl.policies.gpt`) and a Hugging Face causal LM loaded from a local path
(:mod:`pkpo.rl.policies.hf_policy`) are policies; the synthetic verifiable tasks of
:mod:`pkpo.rl.tasks` and the natural-language tasks of :mod:`pkpo.rl.tasks.nl_tasks` are tasks.

Layout convention: a batch of B prompts with n samples each is flattened prompt-major, so rows
j*n .. (j+1)*n - 1 are the n samples of prompt j (the layout ``pkpo.transform`` gets after a
``reshape(B, n)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # torch is imported where tensors are made, so the task registry loads without it
    import torch


@dataclass
class Samples:
    """n completions for each of B prompts, flattened prompt-major."""

    prompt_ids: list[list[int]]  # the B prompts as token ids (unpadded)
    completion_ids: torch.Tensor  # (B*n, T) long, right-padded
    completion_mask: torch.Tensor  # (B*n, T) bool, True on generated tokens up to and including EOS
    n: int

    @property
    def num_prompts(self) -> int:
        return len(self.prompt_ids)


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists: ids (N, L) long and a bool mask (N, L), True on real tokens.

    Every sequence needs at least one token (a policy conditions on the last prompt token).
    """
    import torch

    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("every prompt needs at least one token")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, length - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, length - len(seq) :] = True
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding gets 0)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@runtime_checkable
class Policy(Protocol):
    """A trainable language policy (a torch.nn.Module) with its own tokenizer."""

    def encode(self, text: str) -> list[int]:
        """Prompt text -> token ids (including any chat template or BOS the policy needs)."""

    def decode(self, ids: Sequence[int]) -> str:
        """Completion token ids -> text, stopping at EOS and dropping padding."""

    def sample(
        self,
        prompt_ids: list[list[int]],
        n: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Samples:
        """n completions per prompt, at most ``max_new_tokens`` each, sampled at ``temperature``
        (without gradients)."""

    def sequence_logprobs(self, samples: Samples) -> torch.Tensor:
        """log p(completion | prompt) summed over completion tokens: (B*n,), differentiable."""

    def parameters(self):  # from torch.nn.Module
        ...


@dataclass(frozen=True)
class Problem:
    """One verifiable problem: the prompt text and whatever the verifier needs."""

    uid: str
    prompt: str
    answer: object  # task-specific: the reference answer, or data for partial credit


@runtime_checkable
class Task(Protocol):
    """A procedurally generated, verifiable task family with a train / held-out split by problem."""

    name: str
    binary: bool  # True: rewards are 0/1 (pass@k); False: rewards in [0, 1] (maxg@k)

    def problems(self, split: str) -> list[Problem]:
        """The problems of ``split`` ("train" or "heldout"); deterministic for the task's seed."""

    def score(self, problem: Problem, completion: str) -> float:
        """Reward of one completion: 0/1 for binary tasks, a value in [0, 1] otherwise."""


def build_task(registry: dict, name: str, kind: str = "task", **kwargs):
    """``registry[name](**kwargs)``, with a ValueError for an unknown name or bad options."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(registry)}")
    try:
        return registry[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad options for task {name!r}: {exc}") from None
