"""``python -m minigrad.cli ...``: the same as the ``minigrad`` command."""
import sys

from .main import main

sys.exit(main())
