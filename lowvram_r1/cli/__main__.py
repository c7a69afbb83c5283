"""``python -m lowvram_r1.cli ...``: the same as the ``lowvram-r1`` command (``accelerate launch -m`` uses it)."""

import sys

from lowvram_r1.cli import main

sys.exit(main())
