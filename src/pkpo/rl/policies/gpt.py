"""A small decoder-only transformer with a KV cache and a character tokenizer: the CPU policy.

The whole model is in this file (the nanoGPT layout, bottom-up): the tokenizer, attention with a
preallocated key/value cache, an MLP, a pre-LayerNorm block, ``GPTConfig`` and ``GPT``. ``GPT``
implements the :class:`pkpo.rl.interfaces.Policy` contract, so the RL trainer can sample from it and
differentiate ``log p(completion | prompt)``.

Prompts of different lengths are left-padded: pad keys are masked out of attention and positions
are counted from each row's first real token, so a padded prompt gives the same distribution as the
unpadded one (tested).

Example::

    >>> import torch
    >>> from pkpo.rl.policies.gpt import GPT, GPTConfig
    >>> policy = GPT(GPTConfig(d_model=32, n_layer=1, n_head=2))
    >>> samples = policy.sample([policy.encode("12:r>")], n=4, max_new_tokens=5,
    ...                         generator=torch.Generator().manual_seed(0))
    >>> tuple(samples.completion_ids.shape)
    (4, 5)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..interfaces import Samples, left_pad, positions_from_mask

PAD, BOS, EOS = 0, 1, 2
_CHARS = "".join(chr(c) for c in range(32, 127))  # printable ASCII


class CharTokenizer:
    """Printable ASCII, one token per character, plus PAD / BOS / EOS (ids 0, 1, 2)."""

    def __init__(self) -> None:
        self.stoi = {ch: i + 3 for i, ch in enumerate(_CHARS)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.vocab_size = len(_CHARS) + 3

    def encode(self, text: str) -> list[int]:
        bad = sorted({ch for ch in text if ch not in self.stoi})
        if bad:
            raise ValueError(f"text contains characters outside printable ASCII: {bad!r}")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in self.itos:
                out.append(self.itos[i])
        return "".join(out)


@dataclass(frozen=True)
class GPTConfig:
    """Model size. The defaults (d=96, 3 layers, 4 heads) are the ~0.35M-parameter policy of
    docs/results.md."""

    d_model: int = 96  # embedding width
    n_layer: int = 3  # transformer blocks
    n_head: int = 4  # attention heads (d_model must divide by it)
    block_size: int = 64  # longest prompt + completion, in tokens
    dropout: float = 0.0  # kept at 0 for RL: sampling and scoring must see the same network

    def validate(self) -> "GPTConfig":
        for name in ("d_model", "n_layer", "n_head", "block_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.d_model % self.n_head:
            raise ValueError(
                f"GPTConfig.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        return self


class KVCache:
    """Preallocated keys and values, one (B, heads, T_max, head_dim) tensor per layer.

    One tensor per layer (not one for all layers) so that a differentiable pass can write a layer's
    keys and then read them without a later layer's write invalidating what autograd saved.

    A cache made by :meth:`expand` also holds a *shared prefix*: the keys and values of B prompts,
    each read by a group of n consecutive rows and never copied n times
    (:func:`shared_prefix_attention`).
    """

    def __init__(self, n_layer, batch, n_head, t_max, head_dim, dtype, device):
        shape = (batch, n_head, t_max, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.length = 0  # filled positions of the rows' own keys (same for every row)
        self.prefix = None  # (keys per layer, values per layer, key mask (B, L), n) after expand()

    def expand(self, n: int, extra: int, mask: torch.Tensor) -> "KVCache":
        """A cache for B*n rows (prompt-major) whose prefix is this cache's filled part.

        Each group of n rows shares it without a copy; there is room for ``extra`` own positions;
        ``mask`` (B, L) marks the real (non-pad) prefix keys.
        """
        out = KVCache.__new__(KVCache)
        L = self.length
        out.prefix = ([t[:, :, :L] for t in self.k], [t[:, :, :L] for t in self.v], mask, n)
        B, h, _, hd = self.k[0].shape
        out.k = [self.k[0].new_zeros((B * n, h, extra, hd)) for _ in self.k]
        out.v = [self.v[0].new_zeros((B * n, h, extra, hd)) for _ in self.v]
        out.length = 0
        return out


def shared_prefix_attention(q, k, v, prefix_k, prefix_v, prefix_mask, own_mask, n: int):
    """Softmax attention of each row's queries over [its group's prefix keys, its own keys].

    q, k, v: (B*n, h, T, hd) and (B*n, h, T_own, hd), rows prompt-major; prefix_k, prefix_v:
    (B, h, L, hd), read by the n rows of group b; prefix_mask (B, L) and own_mask (B*n, 1, T, T_own)
    are True where a query may attend. The result equals scaled_dot_product_attention over the
    concatenated keys with the prefix repeated n times, without repeating it: the prefix scores are
    one (n*T x L) product per group, softmax(s) = exp(s - logsumexp(s)) over both parts at once.
    """
    BN, h, T, hd = q.shape
    B, L = prefix_mask.shape
    scale = hd**-0.5

    def grouped(x):  # (B*n, h, T, d) -> (B, h, n*T, d)
        return x.reshape(B, n, h, T, x.shape[-1]).transpose(1, 2).reshape(B, h, n * T, x.shape[-1])

    def ungrouped(x):  # (B, h, n*T, d) -> (B*n, h, T, d)
        return x.reshape(B, h, n, T, x.shape[-1]).transpose(1, 2).reshape(BN, h, T, x.shape[-1])

    s_prefix = (grouped(q) @ prefix_k.transpose(-1, -2)) * scale  # (B, h, n*T, L)
    s_prefix = ungrouped(s_prefix.masked_fill(~prefix_mask[:, None, None, :], float("-inf")))
    s_own = (q @ k.transpose(-1, -2)) * scale  # (B*n, h, T, T_own)
    s_own = s_own.masked_fill(~own_mask, float("-inf"))
    p = torch.softmax(torch.cat([s_prefix, s_own], dim=-1), dim=-1)
    return ungrouped(grouped(p[..., :L]) @ prefix_v) + p[..., L:] @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, attn_mask, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape  # batch, new tokens, width
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )  # (B, h, T, hd)
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k = cache.k[layer][:, :, : start + T]
            v = cache.v[layer][:, :, : start + T]
        if cache is not None and cache.prefix is not None:
            keys, values, mask, n = cache.prefix
            y = shared_prefix_attention(
                q, k, v, keys[layer], values[layer], mask, attn_mask[..., mask.shape[1] :], n
            )
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x, attn_mask, cache=None, layer=0):
        x = x + self.attn(self.ln1(x), attn_mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only transformer policy (implements :class:`pkpo.rl.interfaces.Policy`)."""

    def __init__(self, cfg: GPTConfig | None = None):
        super().__init__()
        self.cfg = (cfg or GPTConfig()).validate()
        self.tokenizer = CharTokenizer()
        V, C = self.tokenizer.vocab_size, self.cfg.d_model
        self.tok_emb = nn.Embedding(V, C)
        self.pos_emb = nn.Embedding(self.cfg.block_size, C)
        self.blocks = nn.ModuleList(Block(self.cfg) for _ in range(self.cfg.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        never = torch.zeros(V, dtype=torch.bool)
        never[[PAD, BOS]] = True
        self.register_buffer("_never", never, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2 paper)
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        return {"kind": "gpt", **asdict(self.cfg)}

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # --- Policy contract: tokenizer -------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return [BOS] + self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def encode_completion(self, text: str) -> list[int]:
        """Completion text -> the token ids the policy should emit (the characters, then EOS)."""
        return self.tokenizer.encode(text) + [EOS]

    # --- the network -----------------------------------------------------------------------
    def forward(self, ids, key_mask, positions, cache: KVCache | None = None):
        """Logits (B, T, V) for new tokens ``ids`` (B, T).

        ``key_mask`` (B, T_keys) is True on real (non-pad) keys, covering the cache plus the new
        tokens; ``positions`` (B, T) are the position ids of the new tokens.
        """
        B, T = ids.shape
        T_keys = key_mask.shape[1]
        if int(positions.max()) >= self.cfg.block_size:
            raise ValueError(
                f"sequence of length {int(positions.max()) + 1} exceeds block_size "
                f"{self.cfg.block_size}"
            )
        past = T_keys - T
        q_pos = torch.arange(past, T_keys, device=ids.device)
        causal = torch.arange(T_keys, device=ids.device)[None, :] <= q_pos[:, None]  # (T, T_keys)
        allowed = causal[None] & key_mask[:, None, :]  # (B, T, T_keys)
        allowed |= (torch.arange(T_keys, device=ids.device)[None, :] == q_pos[:, None])[
            None
        ]  # pad queries see themselves
        x = self.tok_emb(ids) + self.pos_emb(positions)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, allowed[:, None], cache, layer)
        if cache is not None:
            cache.length += T
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return logits.masked_fill(self._never, float("-inf"))  # PAD and BOS are never generated

    # --- Policy contract: sampling and scoring ---------------------------------------------
    @torch.no_grad()
    def sample(self, prompt_ids, n, max_new_tokens, temperature=1.0, generator=None) -> Samples:
        """n completions per prompt (prompt-major rows), ancestral sampling with a KV cache."""
        if n < 1 or max_new_tokens < 1:
            raise ValueError(
                f"need n >= 1 and max_new_tokens >= 1, got n={n}, max_new_tokens={max_new_tokens}"
            )
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        dev = self.device
        logits, cache, mask, next_pos = self._shared_prompt(prompt_ids, n, max_new_tokens)
        R, L = mask.shape
        key_mask = torch.ones((R, L + max_new_tokens), dtype=torch.bool, device=dev)
        key_mask[:, :L] = mask
        out = torch.full((R, max_new_tokens), PAD, dtype=torch.long, device=dev)
        done = torch.zeros(R, dtype=torch.bool, device=dev)
        for t in range(max_new_tokens):
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B*n,)
            tok = torch.where(done, torch.full_like(tok, PAD), tok)
            out[:, t] = tok
            done |= tok == EOS
            if bool(done.all()) or t == max_new_tokens - 1:
                break
            logits = self.forward(tok[:, None], key_mask[:, : L + t + 1], next_pos[:, None], cache)[
                :, -1
            ]
            next_pos = next_pos + 1
        T_used = int(max(1, (out != PAD).sum(1).max().item()))
        out = out[:, :T_used]
        return Samples(
            prompt_ids=[list(p) for p in prompt_ids],
            completion_ids=out,
            completion_mask=(out != PAD),
            n=n,
        )

    def _shared_prompt(self, prompt_ids, n: int, extra: int):
        """Run each of the B prompts once and share it with its n samples.

        Returns the logits after each prompt (B*n, V); a KV cache of B*n rows whose shared prefix
        is the prompts (read by each group of n rows, not copied), with room for ``extra`` more
        positions; the prompt key mask (B*n, L); and the next position ids (B*n,). The prompt is
        most of every sequence on the maze task, so this divides its cost by n, in sampling and
        (with gradients) in scoring.
        """
        dev = self.device
        ids, mask = left_pad(prompt_ids, PAD)
        ids, mask = ids.to(dev), mask.to(dev)  # (B, L)
        pos = positions_from_mask(mask)
        cache = KVCache(
            self.cfg.n_layer,
            ids.shape[0],
            self.cfg.n_head,
            ids.shape[1],
            self.cfg.d_model // self.cfg.n_head,
            self.head.weight.dtype,
            dev,
        )
        logits = self.forward(ids, mask, pos, cache)[:, -1]  # (B, V)
        rows = (logits, mask, pos[:, -1] + 1)
        logits, mask, next_pos = (t.repeat_interleave(n, dim=0) for t in rows)
        return logits, cache.expand(n, extra, mask[::n]), mask, next_pos

    def token_logprobs(self, samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log p and entropy of the completions: two (B*n, T) tensors (0 off the mask).

        Each prompt is run once for its n samples (:meth:`_shared_prompt`), then the completions
        read its cached keys and values: the same logits as one pass over prompt + completion
        (tested).
        """
        dev = self.device
        comp = samples.completion_ids.to(dev)  # (B*n, T)
        cmask = samples.completion_mask.to(dev)
        if comp.shape[0] != len(samples.prompt_ids) * samples.n:
            raise ValueError(
                f"completion rows ({comp.shape[0]}) != prompts x n "
                f"({len(samples.prompt_ids) * samples.n})"
            )
        T = comp.shape[1]
        first, cache, mask, next_pos = self._shared_prompt(samples.prompt_ids, samples.n, T - 1)
        logits = [first[:, None]]  # (B*n, 1, V): predicts comp[:, 0]
        if T > 1:  # comp[:, :-1] predicts comp[:, 1:]
            key_mask = torch.cat([mask, torch.ones_like(cmask[:, :-1])], dim=1)
            pos = next_pos[:, None] + torch.arange(T - 1, device=dev)[None, :]
            logits.append(self.forward(comp[:, :-1], key_mask, pos, cache))
        logp_all = torch.log_softmax(torch.cat(logits, dim=1).float(), dim=-1)  # (B*n, T, V)
        # PAD after EOS has log p = -inf (never generated): select, do not multiply (-inf * 0 = nan)
        logp = torch.where(cmask, logp_all.gather(-1, comp[..., None]).squeeze(-1), 0.0)
        p_all = logp_all.exp()
        ent = torch.where(cmask, -(p_all * logp_all.masked_fill(p_all == 0, 0.0)).sum(-1), 0.0)
        return logp, ent

    def sequence_logprobs(self, samples: Samples) -> torch.Tensor:
        """log p(completion | prompt), summed over the completion tokens (incl. EOS): (B*n,),
        differentiable."""
        return self.token_logprobs(samples)[0].sum(1)
