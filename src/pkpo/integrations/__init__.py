"""Adapters that plug the PKPO transform into RL trainers for LLMs (see docs/integrations.md).

Import the one you need; each imports its framework, so nothing is imported here:

* :mod:`pkpo.integrations.verl`: the ``pkpo`` advantage estimator and ``pkpo_sync`` trainer for
  verl >= 0.9 (auto-registered through the ``verl.plugins`` entry point);
* :mod:`pkpo.integrations.trl`: ``PKPOGRPOTrainer`` / ``PKPORLOOTrainer`` for trl 1.16;
* :mod:`pkpo.integrations.openrlhf`: ``patch()`` for OpenRLHF 0.11, and
  :mod:`pkpo.integrations.openrlhf_launch`, its launcher
  (``python -m pkpo.integrations.openrlhf_launch``);
* :mod:`pkpo.integrations.tunix`: the ``pkpo`` advantage estimator (``register(k=...)``) and
  step-publishing GRPO learners for Tunix 0.1.7 (JAX);
* :mod:`pkpo.integrations.tinker`: ``patch()`` for tinker-cookbook 0.6's RL loop;
* :mod:`pkpo.integrations.skyrl`: ``register()`` in SkyRL's advantage-estimator registry and the
  step-publishing ``PKPOTrainer`` / ``PKPOExp`` (skyrl 0.3);
* :mod:`pkpo.integrations.ms_swift`: ``PKPOGRPOTrainer`` and ``patch()`` for ms-swift 4.6's GRPO.
"""
