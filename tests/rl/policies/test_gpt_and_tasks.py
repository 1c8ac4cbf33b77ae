"""The GPT policy (KV cache, padding, tokenizer) and the hidden-rule tasks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.interfaces import Policy, Samples, Task, left_pad, positions_from_mask  # noqa: E402
from pkpo.rl.policies.gpt import EOS, GPT, PAD, GPTConfig  # noqa: E402
from pkpo.rl.tasks import make_task  # noqa: E402
from pkpo.rl.tasks.hidden_rule import (  # noqa: E402
    RULE_PRIOR,
    HiddenRuleConfig,
    HiddenRuleTask,
    apply_rule,
    partial_credit,
)

torch.set_num_threads(1)


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(d_model=32, n_layer=2, n_head=2, block_size=32))


def test_gpt_satisfies_policy_contract():
    assert isinstance(tiny_gpt(), Policy)
    assert isinstance(make_task("hidden-rule"), Task)


def test_kv_cache_logits_equal_full_forward():
    model = tiny_gpt().eval()
    ids = torch.randint(3, 60, (3, 10))
    mask = torch.ones_like(ids, dtype=torch.bool)
    pos = torch.arange(10).expand(3, 10)
    full = model(ids, mask, pos)  # (3, 10, V)
    from pkpo.rl.policies.gpt import KVCache

    cache = KVCache(2, 3, 2, 10, 16, torch.float32, "cpu")
    step_logits = [model(ids[:, :4], mask[:, :4], pos[:, :4], cache)]
    for t in range(4, 10):
        step_logits.append(model(ids[:, t : t + 1], mask[:, : t + 1], pos[:, t : t + 1], cache))
    torch.testing.assert_close(torch.cat(step_logits, 1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_does_not_change_logprobs():
    model = tiny_gpt()
    short, long = model.encode("12:r>"), model.encode("123456:?>")
    s = model.sample(
        [short, long], n=3, max_new_tokens=6, generator=torch.Generator().manual_seed(1)
    )
    both = model.sequence_logprobs(s)
    alone = Samples(
        prompt_ids=[short],
        completion_ids=s.completion_ids[:3],
        completion_mask=s.completion_mask[:3],
        n=3,
    )
    torch.testing.assert_close(both[:3], model.sequence_logprobs(alone), atol=1e-5, rtol=1e-5)


def test_sample_shapes_mask_and_seeding():
    model = tiny_gpt()
    prompts = [model.encode("123:?>"), model.encode("9:r>")]
    a = model.sample(prompts, n=5, max_new_tokens=7, generator=torch.Generator().manual_seed(3))
    b = model.sample(prompts, n=5, max_new_tokens=7, generator=torch.Generator().manual_seed(3))
    assert a.completion_ids.shape[0] == 10 and a.completion_ids.shape[1] <= 7
    assert torch.equal(a.completion_ids, b.completion_ids)
    for row, m in zip(a.completion_ids, a.completion_mask):
        valid = row[m].tolist()
        assert all(t != PAD for t in valid)
        if EOS in valid:  # mask covers tokens up to and including the first EOS, nothing after
            assert valid.index(EOS) == len(valid) - 1
        assert not m[len(valid) :].any()


def test_tokenizer_roundtrip_and_errors():
    model = tiny_gpt()
    assert model.decode(model.encode_completion("0123?>")) == "0123?>"
    with pytest.raises(ValueError, match="printable ASCII"):
        model.encode("caf\u00e9")
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=30, n_head=4).validate()


@pytest.mark.parametrize(
    "rule, digits, expected",
    [
        ("r", "123456", "654321"),
        ("s", "312954", "123459"),
        ("i", "190939", "201040"),
        ("o", "123456", "234561"),
        ("d", "312954", "954321"),
        ("w", "123456", "214365"),
    ],
)
def test_rules_hand_checked(rule, digits, expected):
    assert apply_rule(rule, digits) == expected


def test_split_is_disjoint_deterministic_and_seeded():
    a, b = HiddenRuleTask(seed=3), HiddenRuleTask(seed=3)
    assert [p.prompt for p in a.problems("train")] == [p.prompt for p in b.problems("train")]
    train = {p.prompt.split(":")[0] for p in a.problems("train")}
    held = {p.prompt.split(":")[0] for p in a.problems("heldout")}
    assert len(train) == 512 and len(held) == 128 and not train & held
    assert [p.prompt for p in HiddenRuleTask(seed=4).problems("train")] != [
        p.prompt for p in a.problems("train")
    ]
    with pytest.raises(ValueError, match="split"):
        a.problems("test")


def test_tiers_and_skewed_prior():
    hard = HiddenRuleTask(tier="hard", feature="sum", n_train=4000, n_heldout=10)
    assert all(p.prompt.endswith(":?>") for p in hard.problems("train"))
    # the majority rule (reverse) answers about half the hard problems
    frac_reverse = np.mean(
        [apply_rule("r", p.prompt[:6]) == p.answer for p in hard.problems("train")]
    )
    assert abs(frac_reverse - RULE_PRIOR[0]) < 0.05
    easy = HiddenRuleTask(tier="easy", feature="first")
    for p in easy.problems("train")[:50]:
        digits, hint = p.prompt[:6], p.prompt[7]
        assert apply_rule(hint, digits) == p.answer
        assert hint == "rrrrrssiod"[int(digits[0])]


def test_scores_binary_and_partial():
    task = make_task("hidden-rule-partial", tier="easy", plan=False)
    p = task.problems("train")[0]
    assert task.score(p, p.answer) == 1.0
    wrong_two = "".join("x" if i < 2 else c for i, c in enumerate(p.answer))
    assert task.score(p, wrong_two) == pytest.approx(4 / 6)
    assert partial_credit("123456", "1234567") == pytest.approx(6 / 7)
    assert make_task("hidden-rule", plan=False).score(p, p.answer[:-1]) == 0.0


def test_plan_character_is_required_but_not_checked():
    task = make_task("hidden-rule")  # plan=True by default
    p = task.problems("train")[0]
    assert task.score(p, "r" + p.answer) == 1.0
    assert task.score(p, "w" + p.answer) == 1.0  # any rule letter: only the answer is verified
    assert task.score(p, p.answer) == 0.0  # missing plan character
    assert task.score(p, "x" + p.answer) == 0.0
    prompt, completion = task.warmstart_batch(np.random.default_rng(0), 2)[
        0
    ]  # hinted demonstration
    assert completion[0] == prompt[7] and completion[1:] == apply_rule(prompt[7], prompt[:6])
    partial = make_task("hidden-rule-partial")
    assert partial.score(p, "s" + p.answer[:3] + "xxx") == pytest.approx(0.5)


def test_bad_task_options():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("nope")
    with pytest.raises(ValueError, match="tier"):
        HiddenRuleConfig(tier="medium").validate()
    with pytest.raises(ValueError, match="bad options"):
        make_task("hidden-rule", colour="red")


def test_logprobs_finite_with_padding_after_eos():
    model = tiny_gpt()
    ids = torch.tensor([[20, 21, EOS, PAD], [20, EOS, PAD, PAD], [22, 23, 24, 25]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    s = Samples(prompt_ids=[model.encode("1:?>")], completion_ids=ids, completion_mask=mask, n=3)
    logp = model.sequence_logprobs(s)
    assert torch.isfinite(logp).all()
    logp.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the padded row's value equals the same completion scored without trailing padding
    alone = Samples(
        prompt_ids=s.prompt_ids, completion_ids=ids[1:2, :2], completion_mask=mask[1:2, :2], n=1
    )
    torch.testing.assert_close(logp[1:2], model.sequence_logprobs(alone))


def test_left_pad_and_positions():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [
        [True] * 3,
        [False, False, True],
    ]
    assert positions_from_mask(mask).tolist() == [
        [0, 1, 2],
        [0, 0, 0],
    ]  # counted from the first real token
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([[5], []], pad_id=0)


def test_shared_prompt_scoring_equals_one_pass_over_prompt_and_completion():
    """token_logprobs runs each prompt once for its n samples; the log-probs and gradients must be
    those of a plain forward pass over every (padded prompt + completion) row."""
    model = tiny_gpt(3)
    prompts = [model.encode("12:r>"), model.encode("123456:?>")]
    s = model.sample(prompts, n=3, max_new_tokens=6, generator=torch.Generator().manual_seed(2))
    ids, mask = left_pad(s.prompt_ids, PAD)
    ids, mask = ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
    L, T = ids.shape[1], s.completion_ids.shape[1]
    key_mask = torch.cat([mask, torch.ones_like(s.completion_mask)], 1)
    logits = model(torch.cat([ids, s.completion_ids], 1), key_mask, positions_from_mask(key_mask))
    logp = (
        torch.log_softmax(logits[:, L - 1 : L + T - 1], -1)
        .gather(-1, s.completion_ids[..., None])
        .squeeze(-1)
    )
    reference = torch.where(s.completion_mask, logp, 0.0).sum(1)
    shared = model.sequence_logprobs(s)
    torch.testing.assert_close(shared, reference, atol=1e-5, rtol=1e-5)
    g_shared = torch.autograd.grad(shared.sum(), model.tok_emb.weight)[0]
    g_ref = torch.autograd.grad(reference.sum(), model.tok_emb.weight)[0]
    torch.testing.assert_close(g_shared, g_ref, atol=1e-5, rtol=1e-4)


def test_shared_prompt_sampling_follows_the_full_forward_pass():
    """Sampling runs each prompt once and copies its cache to the n rows; near-greedy samples must
    be the argmax continuations computed by plain forward passes over the whole sequence."""
    model = tiny_gpt(4).eval()
    prompts = [model.encode("7:?>"), model.encode("12345:r>")]
    s = model.sample(
        prompts, n=2, max_new_tokens=5, temperature=1e-4, generator=torch.Generator().manual_seed(0)
    )
    for row in range(4):
        seq = list(prompts[row // 2])
        for t in range(s.completion_ids.shape[1]):
            if not s.completion_mask[row, t]:
                break
            ids = torch.tensor([seq])
            logits = model(
                ids, torch.ones_like(ids, dtype=torch.bool), torch.arange(len(seq))[None]
            )[0, -1]
            assert int(s.completion_ids[row, t]) == int(logits.argmax())
            seq.append(int(logits.argmax()))


def test_shared_prefix_attention_equals_attention_over_the_repeated_prefix():
    from pkpo.rl.policies.gpt import shared_prefix_attention

    torch.manual_seed(0)
    B, n, h, L, T, hd = 2, 3, 2, 5, 4, 8
    q = torch.randn(B * n, h, T, hd)
    k, v = torch.randn(B * n, h, T, hd), torch.randn(B * n, h, T, hd)
    prefix_k, prefix_v = torch.randn(B, h, L, hd), torch.randn(B, h, L, hd)
    prefix_mask = torch.ones(B, L, dtype=torch.bool)
    prefix_mask[1, :2] = False  # a left-padded prompt
    own_mask = torch.ones(T, T, dtype=torch.bool).tril()[None, None].expand(B * n, 1, T, T)
    out = shared_prefix_attention(q, k, v, prefix_k, prefix_v, prefix_mask, own_mask, n)
    keys = torch.cat([prefix_k.repeat_interleave(n, 0), k], 2)
    values = torch.cat([prefix_v.repeat_interleave(n, 0), v], 2)
    mask = torch.cat(
        [prefix_mask.repeat_interleave(n, 0)[:, None, None, :].expand(B * n, 1, T, L), own_mask], -1
    )
    reference = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
