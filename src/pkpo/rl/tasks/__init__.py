"""The verifiable tasks of the RL layer (each implements :class:`pkpo.rl.interfaces.Task`).

* :mod:`pkpo.rl.tasks.hidden_rule`: the synthetic hidden-rule string transform that the
  from-scratch GPT trains on (``pkpo demo``);
* :mod:`pkpo.rl.tasks.nl_tasks`: natural-language word problems for pretrained models, named
  ``nl:<task>-d<difficulty>`` (``nl_task_from_name``).

:data:`TASKS` is the registry of ``--task`` names that :func:`make_task` builds; a new task module
registers itself with one line in it.
"""

from __future__ import annotations

from ..interfaces import build_task
from .hidden_rule import HiddenRuleConfig, HiddenRuleTask

# task name -> factory(**options) of the task (``pkpo train --task NAME``); one line per task
TASKS = {
    "hidden-rule": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=True, **kw)),
    "hidden-rule-partial": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=False, **kw)),
}


def make_task(name: str, **kwargs):
    """Build a registered task by name (``hidden-rule``, ``hidden-rule-partial``)."""
    return build_task(TASKS, name, **kwargs)
