"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable

Spelling = Callable[[str, object], str]


def python_spelling(name: str, value: object) -> str:
    """How a library caller passes an argument: ``trust_source=True``, ``resume='runs/...'``; the bare name when
    the message names the argument without a value."""
    if value is None:
        return name
    return f"{name}={value}" if isinstance(value, bool) else f"{name}={str(value)!r}"


class Sim2RealError(Exception):
    """A problem with the user's input (a config, a name, a file): the message alone explains it.

    A message that tells the user what to pass names the argument as ``{name}`` and gives its value as a
    keyword: ``Sim2RealError("... pass {trust_source} if you trust it", trust_source=True)``. ``str(error)``
    spells it as a Python argument (``trust_source=True``); the CLI spells it as its flag (``--trust-source``)
    with :meth:`render`, so the library never speaks of flags and the CLI never of keyword arguments.
    """

    def __init__(self, message: str, **arguments: object) -> None:
        self.template = message
        self.arguments = arguments
        super().__init__(self.render(python_spelling))

    def render(self, spell: Spelling) -> str:
        text = self.template
        for name, value in self.arguments.items():
            text = text.replace("{" + name + "}", spell(name, value))
        return text


class NoEffectWarning(UserWarning):
    """A dynamics change that cannot change the simulation (the user meant something by it: say so)."""


class FrictionDominatedWarning(NoEffectWarning):
    """A geom friction change that MuJoCo's contact friction combination (partly) overrides."""
