"""Time pkpo's reward transform against reference implementations (same code as `pkpo bench`).

    python benchmarks/transform.py              # full run, about a minute on 2 CPU cores
    python benchmarks/transform.py --quick      # a few seconds
    python benchmarks/transform.py --threads 1  # on a busy machine (see benchmarks/README.md)
    python benchmarks/transform.py --device cuda --json bench.json

Prints markdown tables whose ratios are all measured in the same run; see pkpo/bench.py for what
is timed and how.
"""

import sys

from pkpo.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
