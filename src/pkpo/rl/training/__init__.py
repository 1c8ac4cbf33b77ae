"""The training step and what one run needs around it.

* :mod:`pkpo.rl.training.trainer`: ``train``, the RL loop (sample, score, transform, update);
* :mod:`pkpo.rl.training.evaluation`: ``evaluate``, held-out pass@k / maxg@k of a policy;
* :mod:`pkpo.rl.training.warmstart`: the supervised warm start, cached on disk;
* :mod:`pkpo.rl.training.checkpoint`: checkpoints (sha256-checked, written atomically);
* :mod:`pkpo.rl.training.rundir`: run folders: refusing, resuming or replacing a run, and its lock.

Nothing is imported here (most of these modules import torch).
"""
