"""``python -m extract``: see :mod:`extract.cli`."""

import sys

from .cli import main

sys.exit(main())
