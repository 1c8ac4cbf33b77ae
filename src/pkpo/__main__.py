"""``python -m pkpo``: the same as the ``pkpo`` command."""

import sys

from .cli import main

sys.exit(main())
