"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class Sim2RealError(Exception):
    """A problem with the user's input (a config, a name, a file): the message alone explains it."""


class FrictionDominatedWarning(UserWarning):
    """A geom friction change that MuJoCo's contact friction combination (partly) overrides."""
