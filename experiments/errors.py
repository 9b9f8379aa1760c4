"""The usage error of every ``xfw`` command: a leaf module, importing nothing of the project.

Code below the command line (configs, the grid runner, the store, the check runner)
raises :class:`UsageError` for a bad value the user gave; the command line prints its
message as one line, ``xfw: error: <message>``, and exits with status 2.
"""


class UsageError(ValueError):
    """A bad option, field or file the user gave; printed as one line, exit status 2.

    The message starts with the thing it names (``--eta``, ``--config PATH``, a TOML
    field, a file with its path) and says what is allowed.
    """
