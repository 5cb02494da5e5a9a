"""``python -m minigrad ...``: the same as the ``minigrad`` command."""
import sys

from .cli.main import main

sys.exit(main())
