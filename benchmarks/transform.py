"""Time pkpo's reward transform against the paper's algorithm as a plain-Python loop, and against
verl.

    python benchmarks/transform.py              # full run, about a minute on 2 CPU cores
    python benchmarks/transform.py --quick      # a few seconds
    python benchmarks/transform.py --threads 1  # on a busy machine (see benchmarks/README.md)
    python benchmarks/transform.py --device cuda --json bench.json

The same code and flags as ``pkpo bench`` (pkpo/commands/bench.py), plus two references in the
first table: the per-group loop of benchmarks/reference_loop.py with its rank weights from
math.comb (Listing 1's way) or from O(1) ratio recurrences. Every ratio is measured in the same run.
"""

import sys

from reference_loop import comb_weights, ratio_weights, time_loop

from pkpo.commands.bench import Reference, main

LOOPS = (
    Reference(
        "loop",
        "loop, math.comb",
        "math.comb loop / pkpo",
        lambda rewards, k, budget: time_loop(rewards, k, comb_weights, budget),
    ),
    Reference(
        "loop_ratio",
        "loop, ratios",
        "ratio loop / pkpo",
        lambda rewards, k, budget: time_loop(rewards, k, ratio_weights, budget),
    ),
)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], references=LOOPS))
