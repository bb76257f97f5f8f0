"""The one exception type meant for users.

Anything that is the user's mistake (a bad value, a missing file, an unknown name) is raised as `DAFError` with a
one-line message naming the bad value and what would be valid. The CLI prints that line and exits non-zero; every
other exception is a bug or an environment failure and keeps its traceback.
"""


class DAFError(Exception):
    """A user-facing error: the message is one line, names the bad value and what is valid."""


class Pruned(Exception):
    """A sweep's pruner stopped this run after a validation (daf_hydra.studies): not a failure and not a result.
    The run is recorded as pruned and its trial told so."""
