"""The verifiable tasks of the RL layer (each implements :class:`pkpo.rl.interfaces.Task`).

* :mod:`pkpo.rl.tasks.hidden_rule`: the synthetic hidden-rule string transform that the
  from-scratch GPT trains on (``pkpo demo``);
* :mod:`pkpo.rl.tasks.maze`: Prim's mazes, MaxRL's maze benchmark at CPU scale (``maze``,
  ``maze-progress``);
* :mod:`pkpo.rl.tasks.nl_tasks`: natural-language word problems for pretrained models, named
  ``nl:<task>-d<difficulty>`` (``nl_task_from_name``).

:data:`TASKS` is the registry of ``--task`` names that :func:`make_task` builds; a new task module
registers itself with one line in it.
"""

from __future__ import annotations

from ..interfaces import build_task
from .hidden_rule import HiddenRuleConfig, HiddenRuleTask
from .maze import MazeConfig, MazeTask

# task name -> factory(**options) of the task (``pkpo train --task NAME``); one line per task
TASKS = {
    "hidden-rule": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=True, **kw)),
    "hidden-rule-partial": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=False, **kw)),
    "maze": lambda **kw: MazeTask(MazeConfig(binary=True, **kw)),
    "maze-progress": lambda **kw: MazeTask(MazeConfig(binary=False, **kw)),
}


def make_task(name: str, **kwargs):
    """Build a registered task by name (``hidden-rule``, ``hidden-rule-partial``, ``maze``,
    ``maze-progress``)."""
    return build_task(TASKS, name, **kwargs)
