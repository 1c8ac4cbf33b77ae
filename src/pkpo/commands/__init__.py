"""Front ends of the math layer, one module per ``pkpo`` subcommand (see :mod:`pkpo.cli`).

- :mod:`pkpo.commands.eval`: ``pkpo eval``, pass@k / maxg@k with confidence intervals from a file
  of graded samples (:mod:`pkpo.commands.readers` reads the formats);
- :mod:`pkpo.commands.bench`: ``pkpo bench``, the speed of the transform.

The experiments have their own front ends: ``pkpo toy`` in :mod:`pkpo.toy.cli`, ``pkpo demo`` /
``train`` / ``sweep`` in :mod:`pkpo.rl.cli`.
"""
