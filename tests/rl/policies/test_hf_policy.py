"""HFPolicy on a tiny, locally built Llama + word-level tokenizer (fast; no downloads)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pkpo.rl.interfaces import Policy, Samples  # noqa: E402
from pkpo.rl.policies.hf_policy import HFPolicy  # noqa: E402
from pkpo.rl.policies.pretrained import apply_lora  # noqa: E402

WORDS = (
    ["<pad>", "<eos>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
    + [str(i) for i in range(10)]
    + "the answer is has gets more what how many".split()
)
CHAT = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def tiny_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat:
        tok.chat_template = CHAT
    return tok


def tiny_model(seed: int = 0, tied: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=3,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(cfg)


@pytest.fixture
def policy():
    return HFPolicy(tiny_model(), tiny_tokenizer())


def reference_logprobs(policy: HFPolicy, prompt: list[int], completion: list[int]) -> float:
    """log p(completion | prompt) from one unpadded forward pass over prompt + completion."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    return float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None]).sum())


def test_satisfies_the_policy_contract(policy):
    assert isinstance(policy, Policy)
    assert set(policy.stop_ids) == {1, 4}  # EOS and the chat template's end-of-turn token


def test_encode_uses_the_chat_template_when_present():
    with_chat = HFPolicy(tiny_model(), tiny_tokenizer(chat=True))
    ids = with_chat.encode("what is 4")
    assert ids[0] == WORDS.index("<|im_start|>") and ids[-1] == WORDS.index("assistant")
    raw = HFPolicy(tiny_model(), tiny_tokenizer(chat=False))
    assert raw.encode("what is 4") == [WORDS.index(w) for w in ("what", "is", "4")]
    forced_raw = HFPolicy(tiny_model(), tiny_tokenizer(chat=True), use_chat_template=False)
    assert forced_raw.encode("what is 4") == raw.encode("what is 4")
    with_system = HFPolicy(tiny_model(), tiny_tokenizer(), system_prompt="the answer")
    assert (
        len(with_system.encode("what is 4")) == len(ids) + 5
    )  # <|im_start|> system the answer <|im_end|>


def test_decode_stops_at_the_first_stop_token(policy):
    ids = [WORDS.index(w) for w in ("the", "answer", "is", "7")]
    assert policy.decode(ids + [1, WORDS.index("9")]) == "the answer is 7"
    assert policy.decode(torch.tensor(ids + [4, 5])) == "the answer is 7"
    assert policy.decode([1]) == ""


def test_sample_layout_mask_and_determinism(policy):
    prompts = [policy.encode("what is 4"), policy.encode("how many has the answer")]
    s = policy.sample(prompts, n=5, max_new_tokens=6, generator=torch.Generator().manual_seed(1))
    assert isinstance(s, Samples) and s.n == 5 and s.num_prompts == 2
    assert s.completion_ids.shape[0] == 10 and s.completion_ids.shape[1] <= 6
    assert s.completion_mask.dtype == torch.bool
    for row, mask in zip(s.completion_ids.tolist(), s.completion_mask.tolist()):
        length = sum(mask)
        assert mask == [True] * length + [False] * (len(mask) - length)  # a prefix
        stops = [t for t in row[:length] if t in policy.stop_ids]
        assert stops in ([], [row[length - 1]])  # only the last kept token may be a stop token
        if length < len(row):
            assert row[length - 1] in policy.stop_ids and all(
                t == policy.pad_id for t in row[length:]
            )
    again = policy.sample(
        prompts, n=5, max_new_tokens=6, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(s.completion_ids, again.completion_ids)
    other = policy.sample(
        prompts, n=5, max_new_tokens=6, generator=torch.Generator().manual_seed(2)
    )
    assert not torch.equal(s.completion_ids, other.completion_ids)


def test_greedy_sampling_is_unaffected_by_left_padding(policy):
    short, long = policy.encode("what is 4"), policy.encode("how many has the answer is 3 more")
    alone = policy.sample([short], n=1, max_new_tokens=8, temperature=0.0)
    batched = policy.sample([long, short], n=1, max_new_tokens=8, temperature=0.0)
    length = int(alone.completion_mask[0].sum())
    assert batched.completion_ids[1, :length].tolist() == alone.completion_ids[0, :length].tolist()


def test_sequence_logprobs_match_unpadded_forward_passes(policy):
    prompts = [policy.encode("what is 4"), policy.encode("how many has the answer is 3 more")]
    s = policy.sample(prompts, n=3, max_new_tokens=7, generator=torch.Generator().manual_seed(0))
    got = policy.sequence_logprobs(s)
    assert got.shape == (6,) and got.requires_grad
    for row in range(6):
        completion = s.completion_ids[row][s.completion_mask[row]].tolist()
        expected = reference_logprobs(policy, prompts[row // 3], completion)
        assert float(got[row].detach()) == pytest.approx(expected, abs=1e-4)


def test_sampling_frequencies_match_the_model_probabilities(policy):
    """First-token frequencies over many samples agree with exp(log p) within 4 standard errors."""
    prompt = policy.encode("what is 4")
    n = 4000
    s = policy.sample([prompt], n=n, max_new_tokens=1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        probs = torch.softmax(policy.model(input_ids=torch.tensor([prompt])).logits[0, -1], -1)
    freq = torch.bincount(s.completion_ids[:, 0], minlength=len(WORDS)).double() / n
    se = torch.sqrt(probs.double() * (1 - probs.double()) / n)
    assert torch.all((freq - probs.double()).abs() <= 4 * se + 1e-3)
    lp = policy.sequence_logprobs(s).detach()
    assert torch.allclose(lp, torch.log(probs[s.completion_ids[:, 0]]), atol=1e-5)


def test_gradient_reaches_every_weight_without_lora(policy):
    s = policy.sample(
        [policy.encode("what is 4")],
        n=2,
        max_new_tokens=4,
        generator=torch.Generator().manual_seed(0),
    )
    policy.sequence_logprobs(s).sum().backward()
    assert all(p.grad is not None for p in policy.parameters())
    assert policy.model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_gradient_reaches_lora_weights_only():
    policy = HFPolicy(
        apply_lora(tiny_model(), {"r": 4, "target_modules": ("q_proj", "v_proj")}), tiny_tokenizer()
    )
    s = policy.sample(
        [policy.encode("what is 4")],
        n=3,
        max_new_tokens=4,
        generator=torch.Generator().manual_seed(0),
    )
    policy.sequence_logprobs(s).sum().backward()
    with_grad = {name for name, p in policy.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    assert any(p.grad.abs().sum() > 0 for name, p in policy.named_parameters() if "lora_B" in name)
    assert all(not p.requires_grad for name, p in policy.named_parameters() if "lora_" not in name)


@pytest.mark.parametrize("tied", [False, True])  # SmolLM2 ties lm_head to the embedding
def test_lora_checkpoint_holds_adapters_only_and_round_trips(tied):
    policy = HFPolicy(apply_lora(tiny_model(tied=tied), {"r": 4}), tiny_tokenizer())
    state = policy.state_dict()
    assert state and all("lora_" in key for key in state)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    saved = {k: v.clone() for k, v in policy.state_dict().items()}
    fresh = HFPolicy(apply_lora(tiny_model(tied=tied), {"r": 4}), tiny_tokenizer())
    fresh.load_state_dict(saved)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(ValueError, match="does not match"):
        fresh.load_state_dict({"not.a.key": torch.zeros(1)})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=-1.0), "temperature"),
    ],
)
def test_sample_rejects_bad_arguments(policy, kwargs, message):
    args = dict(n=2, max_new_tokens=3, temperature=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        policy.sample([policy.encode("what is 4")], **args)


def test_bad_inputs(policy):
    with pytest.raises(ValueError, match="no empty prompt"):
        policy.sample([[]], n=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="str prompt"):
        policy.encode(42)
    s = policy.sample([policy.encode("what is 4")], n=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="prompts x n"):
        policy.sequence_logprobs(Samples(s.prompt_ids * 2, s.completion_ids, s.completion_mask, 2))
