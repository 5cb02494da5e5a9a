"""``python -m minigrad.bench`` runs ``minigrad bench``."""
import sys

from .runner import main

sys.exit(main())
