"""A Hugging Face causal language model as a :class:`pkpo.rl.interfaces.Policy`.

:class:`HFPolicy` wraps any ``transformers`` causal LM (optionally a ``peft`` LoRA model) and its
tokenizer, and gives the RL trainer the four things it needs:

- ``encode``: prompt text -> ids, through the tokenizer's chat template when it has one;
- ``decode``: completion ids -> text, cut at the first stop token;
- ``sample``: n completions per prompt, batched with left padding and a KV cache, drawn with an
  explicit ``torch.Generator`` so that a seed fixes the samples;
- ``sequence_logprobs``: log pi(y | x) = sum_t log pi(y_t | x, y_<t), differentiable, the quantity
  whose gradient the PKPO policy gradient weights by the transformed rewards (paper eq. 6:
  grad E[f] = E[sum_i s_i grad log pi(y_i | x)]).

Sampling is a hand-written loop rather than ``model.generate`` only so that it can take a
``torch.Generator``; the model call itself is the standard ``transformers`` forward with a cache.
"""

from __future__ import annotations

from typing import Sequence

import torch

from pkpo.rl.interfaces import Samples, left_pad, positions_from_mask

# Token strings that end an assistant turn in common chat templates (ChatML, Llama 3, Gemma).
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")


def stop_token_ids(model, tokenizer) -> list[int]:
    """The token ids that end a completion: the model's and tokenizer's EOS plus end-of-turn tokens.

    GGUF-converted tokenizers do not always name the chat template's end-of-turn token as EOS
    (SmolLM2's reports ``<|im_start|>``), so the generation config's EOS and known end-of-turn
    tokens present in the vocabulary are added.
    """
    ids: set[int] = set()
    generation_config = getattr(model, "generation_config", None)
    eos = getattr(generation_config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    vocab = tokenizer.get_vocab()
    for token in _END_OF_TURN_TOKENS:
        if token in vocab:
            ids.add(int(vocab[token]))
    if not ids and tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise ValueError(
            "the model and tokenizer define no EOS or end-of-turn token; pass stop_ids"
        )
    return sorted(ids)


def sample_next_token(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per row from softmax(logits / temperature); greedy at temperature 0."""
    if temperature == 0.0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if (
        generator is not None and generator.device != probs.device
    ):  # e.g. a CPU generator for a GPU model
        return (
            torch.multinomial(probs.to(generator.device), 1, generator=generator)
            .squeeze(-1)
            .to(probs.device)
        )
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class HFPolicy(torch.nn.Module):
    """A Hugging Face causal LM + tokenizer satisfying the ``Policy`` contract.

    Parameters
    ----------
    model : a ``transformers`` causal LM (or a ``peft`` model wrapping one).
    tokenizer : its tokenizer.
    system_prompt : optional system message for the chat template; ``None`` keeps the template's
        default. Ignored when the tokenizer has no chat template.
    use_chat_template : set False to encode raw text even when a chat template exists.
    stop_ids : token ids that end a completion; default :func:`stop_token_ids`.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        stop_ids: Sequence[int] | None = None,
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.use_chat_template = bool(use_chat_template) and bool(
            getattr(tokenizer, "chat_template", None)
        )
        if stop_ids is None:
            stop_ids = stop_token_ids(model, tokenizer)
        self.stop_ids = sorted(set(int(i) for i in stop_ids))
        if not self.stop_ids:
            raise ValueError("stop_ids must name at least one token id")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.stop_ids[0]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- text <-> ids -------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Prompt text -> ids: a user turn plus the assistant header when there is a chat
        template."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str prompt, got {type(text).__name__}")
        if not self.use_chat_template:
            return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        messages = [{"role": "user", "content": text}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True
        )
        if hasattr(encoded, "keys"):  # transformers >= 5 returns a BatchEncoding
            encoded = encoded["input_ids"]
        return [int(i) for i in encoded]

    def decode(self, ids: Sequence[int]) -> str:
        """Completion ids -> text, cut before the first stop token."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        stops = set(self.stop_ids)
        kept = []
        for token in ids:
            if int(token) in stops:
                break
            kept.append(int(token))
        return self.tokenizer.decode(
            kept, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    # ---- sampling -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        prompt_ids: list[list[int]],
        n: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Samples:
        """n completions per prompt (prompt-major rows), left-padded batch with a KV cache."""
        if not prompt_ids or any(len(p) == 0 for p in prompt_ids):
            raise ValueError("sample needs at least one prompt and no empty prompt")
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if not temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        n, max_new_tokens, temperature = int(n), int(max_new_tokens), float(temperature)
        device = self.device
        # prefill each prompt once, then copy its KV cache to its n samples
        ids, mask = left_pad(prompt_ids, self.pad_id)
        ids, mask = ids.to(device), mask.long().to(device)  # HF attention masks are 0/1 integers
        stops = torch.tensor(self.stop_ids, device=device)

        was_training = self.model.training
        self.model.eval()
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        logits = out.logits[:, -1, :].repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0)
        positions = positions_from_mask(mask)[:, -1:]
        tokens, alive_masks = [], []
        alive = torch.ones(mask.shape[0], dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            nxt = sample_next_token(logits, temperature, generator)
            nxt = torch.where(alive, nxt, torch.full_like(nxt, self.pad_id))
            tokens.append(nxt)
            alive_masks.append(alive.clone())
            alive = alive & ~torch.isin(nxt, stops)
            if not alive.any() or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions + 1
            out = self.model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[:, -1, :]
        self.model.train(was_training)
        completion_ids = torch.stack(tokens, dim=1)
        completion_mask = torch.stack(alive_masks, dim=1)
        return Samples(
            prompt_ids=[list(p) for p in prompt_ids],
            completion_ids=completion_ids,
            completion_mask=completion_mask,
            n=n,
        )

    # ---- log-probabilities ----------------------------------------------------------------------

    def token_logprobs(self, samples: Samples) -> torch.Tensor:
        """log pi(y_t | x, y_<t) for every completion position: (B*n, T), zero where masked.

        Each prompt goes through the model once (B rows, not B*n); its KV cache, still attached to
        the autograd graph, is copied to its n completions, which then run as one batch. This is
        exact (the same numbers as one forward pass over prompt + completion per row) and makes the
        prompt cost independent of n.
        """
        completion = samples.completion_ids.to(self.device)
        comp_mask = samples.completion_mask.to(self.device)
        n, B = samples.n, samples.num_prompts
        if completion.shape[0] != B * n:
            raise ValueError(
                f"samples hold {completion.shape[0]} completions but {B} prompts x n={n} = {B * n}"
            )
        prompt, prompt_mask = left_pad(samples.prompt_ids, self.pad_id)
        prompt, prompt_mask = prompt.to(self.device), prompt_mask.long().to(self.device)
        out = self.model(
            input_ids=prompt,
            attention_mask=prompt_mask,
            position_ids=positions_from_mask(prompt_mask),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        first_logits = out.logits[:, -1:, :].repeat_interleave(n, dim=0)  # predicts y_0
        T = completion.shape[1]
        if T > 1:
            mask = torch.cat([prompt_mask.repeat_interleave(n, dim=0), comp_mask.long()], dim=1)
            positions = positions_from_mask(mask)[:, -T:-1]
            rest = self.model(
                input_ids=completion[:, :-1],
                attention_mask=mask[:, :-1],
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            ).logits  # predict y_1 .. y_{T-1}
            logits = torch.cat([first_logits, rest], dim=1)
        else:
            logits = first_logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
        return picked * comp_mask.to(picked.dtype)

    def sequence_logprobs(self, samples: Samples) -> torch.Tensor:
        """log pi(y | x) = sum_t log pi(y_t | x, y_<t) over generated tokens: (B*n,),
        differentiable."""
        return self.token_logprobs(samples).sum(-1)

    def forward(self, samples: Samples) -> torch.Tensor:
        return self.sequence_logprobs(samples)

    # ---- checkpoints ----------------------------------------------------------------------------

    def _frozen_keys(self) -> set[str]:
        # every name of a frozen tensor, tied ones included (SmolLM2's lm_head.weight is its
        # embedding)
        return {
            name for name, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad
        }

    def state_dict(self, *args, **kwargs):
        """The trainable tensors only when part of the model is frozen (LoRA): the frozen base
        weights come from the model's source, so checkpoints stay a few MB instead of the whole
        model."""
        full = super().state_dict(*args, **kwargs)
        frozen = self._frozen_keys()
        if not frozen or args or kwargs:
            return full
        return type(full)((key, value) for key, value in full.items() if key not in frozen)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a checkpoint written by :meth:`state_dict` (trainable tensors only, or
        everything)."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        if strict:
            missing = [key for key in result.missing_keys if key not in self._frozen_keys()]
            if missing or result.unexpected_keys:
                raise ValueError(
                    f"checkpoint does not match this policy: missing {missing[:5]}, "
                    f"unexpected {list(result.unexpected_keys)[:5]}"
                )
        return result
