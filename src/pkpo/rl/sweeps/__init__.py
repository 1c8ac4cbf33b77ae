"""Grids of RL runs (``pkpo sweep``, ``pkpo demo``) and their reports.

* :mod:`pkpo.rl.sweeps.grid`: ``run_grid``, the warm starts and runs of a grid, in worker processes;
* :mod:`pkpo.rl.sweeps.runs`: reading finished runs (``final.json``, per-problem records, curves);
* :mod:`pkpo.rl.sweeps.report`: the table, paired comparisons, generated findings and ``report.md``;
* :mod:`pkpo.rl.sweeps.plots`: the figures (matplotlib is imported only when they are drawn).
"""
