"""The policies of the RL layer (each implements :class:`pkpo.rl.interfaces.Policy`).

* :mod:`pkpo.rl.policies.gpt`: a small from-scratch GPT with a KV cache (``pkpo demo``);
* :mod:`pkpo.rl.policies.hf_policy`: ``HFPolicy``, a Hugging Face causal LM;
* :mod:`pkpo.rl.policies.pretrained`: ``load_pretrained``, a pretrained model (SmolLM2 or a local
  checkpoint), optionally with LoRA adapters, as an ``HFPolicy``.

Each module imports torch (``hf_policy`` and ``pretrained`` also transformers), so nothing is
imported here.
"""
