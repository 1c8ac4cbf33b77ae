"""PKPO inside TRL's GRPOTrainer on a tiny, locally built Llama (CPU, no downloads, < 2 minutes).

The task: the prompt is one letter, the answer is a 3-letter completion that contains it. A
random-init model over an 8-letter alphabet gets it right by luck some of the time, so pass@1
is low and pass@4 is higher; PKPO with k=4 trains on the unbiased pass@4 gradient.

    .venv/bin/python examples/trl_tiny.py                  # PKPO; pass@1 and pass@4 before/after
    .venv/bin/python examples/trl_tiny.py --trainer grpo   # plain GRPO, same lr, for comparison
    .venv/bin/python examples/trl_tiny.py --scale none     # the paper's advantage values
    .venv/bin/python examples/trl_tiny.py --steps 5        # a quicker smoke run

Both trainers use the same learning rate (``--lr``, tuned for plain GRPO on this task) and TRL's
other defaults; PKPO's default advantage scale ("mean_abs") is what lets it share GRPO's lr.

Nothing is downloaded: the tokenizer is a character-level WordLevel model built here, the model a
transformers LlamaConfig with tiny dimensions and random weights, both saved to a temp dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

LETTERS = "abcdefgh"
LEARNING_RATE = 3e-3  # where plain GRPO learns this task in 100 steps
SPECIAL = ["<pad>", "<eos>", "<unk>"]


def build_tokenizer():
    """A character-level tokenizer: one token per letter of LETTERS, plus pad/eos/unk."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + list(LETTERS) + [":"])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def build_tiny_model(
    directory: str, seed: int = 0, *, max_positions: int = 32, chat_template: str | None = None
) -> str:
    """Save a random-init Llama (19k parameters) and its tokenizer under ``directory`` (with
    ``chat_template`` on the tokenizer when given, for trainers that apply one)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def prompts_dataset(repeats: int = 8):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [f"{letter}:" for letter in LETTERS] * repeats})


def contains_prompt_letter(prompts, completions, **kwargs):
    """Binary reward: 1 if the completion contains the prompt's letter."""
    return [float(prompt[0] in completion) for prompt, completion in zip(prompts, completions)]


@torch.no_grad()
def measure_pass_at_k(model, tokenizer, ks=(1, 4), n: int = 16, max_new_tokens: int = 3) -> dict:
    """Unbiased pass@k (pkpo.pass_at_k) over all letters, from n samples per prompt."""
    import pkpo

    model.eval()
    correct = []
    for letter in LETTERS:
        ids = tokenizer(f"{letter}:", return_tensors="pt").input_ids.repeat(n, 1)
        out = model.generate(
            ids,
            do_sample=True,
            max_new_tokens=max_new_tokens,
            temperature=1.0,
            top_k=0,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        correct.append([letter in text for text in texts])
    correct = np.array(correct)
    return {k: float(np.mean(pkpo.pass_at_k(correct, k))) for k in ks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="GRPO optimisation steps")
    parser.add_argument("--k", type=int, default=4, help="pass@k to optimise")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainer", choices=("pkpo", "grpo"), default="pkpo")
    parser.add_argument("--beta", type=float, default=0.0, help="KL coefficient (TRL's default 0)")
    parser.add_argument(
        "--eval-samples", type=int, default=64, help="samples per letter for pass@k before/after"
    )
    parser.add_argument(
        "--lr", type=float, default=LEARNING_RATE, help="the same for both trainers"
    )
    parser.add_argument(
        "--scale", default=None, help="PKPO advantage scale (default: the adapter's, mean_abs)"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    os.environ.setdefault("WANDB_DISABLED", "true")
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from pkpo.integrations.trl import PKPOGRPOConfig, PKPOGRPOTrainer

    with tempfile.TemporaryDirectory() as workdir:
        model_dir = build_tiny_model(os.path.join(workdir, "tiny-llama"), seed=args.seed)
        tokenizer = build_tokenizer()
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        torch.manual_seed(args.seed + 1)
        before = measure_pass_at_k(model, tokenizer, ks=(1, args.k), n=args.eval_samples)

        common = {
            "output_dir": os.path.join(workdir, "out"),
            "num_generations": args.num_generations,
            "per_device_train_batch_size": 2 * args.num_generations,
            "max_completion_length": 3,
            "max_steps": args.steps,
            "learning_rate": args.lr,
            "logging_steps": 25,
            "save_strategy": "no",
            "report_to": [],
            "seed": args.seed,
            "use_cpu": True,
            "temperature": 1.0,
            "beta": args.beta,
            "disable_tqdm": False,
        }
        if args.trainer == "grpo":
            config_class, trainer_class = GRPOConfig, GRPOTrainer
        else:
            config_class, trainer_class = PKPOGRPOConfig, PKPOGRPOTrainer
            common.update(pkpo_k=args.k)
            if args.scale is not None:
                common.update(pkpo_scale=args.scale)
        config = config_class(**common)
        trainer = trainer_class(
            model=model,
            reward_funcs=contains_prompt_letter,
            args=config,
            train_dataset=prompts_dataset(),
            processing_class=tokenizer,
        )
        trainer.train()

        torch.manual_seed(args.seed + 1)
        after = measure_pass_at_k(trainer.model, tokenizer, ks=(1, args.k), n=args.eval_samples)
    scale = f" scale={config.pkpo_scale} k={args.k}" if args.trainer == "pkpo" else ""
    print(f"trainer={args.trainer}{scale} lr={args.lr:g} beta={args.beta:g} seed={args.seed}")
    for k in (1, args.k):
        print(f"pass@{k}: before {before[k]:.3f}  after {after[k]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
