"""The ``xfw`` command line: :func:`main`, one module per command. Nothing below the
command line imports this package."""
from .main import main

__all__ = ["main"]
