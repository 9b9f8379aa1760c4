"""``python -m experiments.cli``: the same as the ``xfw`` command."""
import sys

from .main import main

sys.exit(main())
