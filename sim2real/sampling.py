"""Where a randomized source's episodes are drawn: each region of the randomization given its due.

Uniform draws per episode give a region of the distribution a share of the *episodes* equal to its
probability, but a share of the *samples* equal to its probability times its episode length. A region where
the policy fails within 20 steps (IDP's lightest, least-damped corner) then holds a few hundredths of what
PPO learns from, and training leaves it behind: the randomized IDP source returned 152 at the nominal model
it was randomized around (the nominal source 9,359).

A :class:`Sampler` reweights the draws from what the env's recent episodes showed, by rejection in the
distribution's own uniform coordinates (``u`` in [0, 1]^d, which the distributions' inverse CDFs map to
values), so the draw stays within the distribution's support and every point keeps a density of at least
``floor`` times its own:

- ``steps``: a draw is kept with probability in inverse proportion to the episode length its neighbours in
  the memory had, so each region's share of the *steps* approaches its probability;
- ``failures``: a draw is kept with probability ``exp(-(R - R_min) / (temperature * (R_max - R_min)))``
  from its neighbours' return ``R``: regions where the policy scores least are drawn most, as long as they
  do (a return-conditioned distribution; DORAEMON, Tiboni et al. 2024, maximizes entropy under a success
  constraint instead, which needs a success threshold per env).

Each env holds its own memory of its last episodes (its draw, return and length) and its own generator, so a
run's draws stay reproducible from its seed. A seeded reset empties the memory (the same seed draws the same),
and so a resumed run starts with an empty one: until it holds ``neighbours`` episodes the draws are uniform.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

SamplingMode = Literal["uniform", "steps", "failures"]


@dataclass(frozen=True)
class SamplingSpec:
    """A domain's sampling settings at runtime (see :class:`sim2real.config.domains.SamplingConfig`)."""

    mode: SamplingMode = "uniform"
    floor: float = 0.25
    memory: int = 128
    neighbours: int = 5
    temperature: float = 0.25
    tries: int = 32
    quantities: tuple[str, ...] | None = None  # weight only these quantities' draws (None: every reset draw)


class Sampler:
    """Draws the uniform coordinates of a reset's random terms, reweighted by the env's recent episodes."""

    def __init__(self, spec: SamplingSpec, size: int, columns: np.ndarray | None = None) -> None:
        """``size`` uniform coordinates a reset draws, of which ``columns`` (default: all) are weighted; the
        others (a ``when: interval`` term's first draw, soon replaced) are drawn uniformly."""
        self.spec, self.size = spec, size
        self.columns = np.arange(size) if columns is None else np.asarray(columns)
        self._draws: deque[np.ndarray] = deque(maxlen=spec.memory)
        self._returns: deque[float] = deque(maxlen=spec.memory)
        self._lengths: deque[int] = deque(maxlen=spec.memory)

    def draw(self, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """Fills ``out`` with the next episode's uniform coordinates: ``tries`` candidates, the first one kept
        (by the floor, or by its weight); where none is, the one of highest weight."""
        spec = self.spec
        rng.random(out=out)
        if spec.mode == "uniform" or len(self._draws) < spec.neighbours:
            return out
        candidates = rng.random((spec.tries, len(self.columns)))
        weights = self.weights(candidates)
        kept = (rng.random(spec.tries) < spec.floor) | (rng.random(spec.tries) < weights)
        out[self.columns] = candidates[int(np.argmax(kept)) if kept.any() else int(np.argmax(weights))]
        return out

    def weights(self, candidates: np.ndarray) -> np.ndarray:
        """Each candidate's acceptance in [0, 1], from the mean of its ``neighbours`` nearest past episodes."""
        draws = np.asarray(self._draws)
        distances = ((candidates[:, None, :] - draws[None, :, :]) ** 2).sum(axis=-1)
        k = min(self.spec.neighbours, len(draws))
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        if self.spec.mode == "steps":
            lengths = np.asarray(self._lengths, dtype=np.float64)
            return np.minimum(1.0, lengths.min() / lengths[nearest].mean(axis=1))
        returns = np.asarray(self._returns)
        low, spread = returns.min(), max(float(np.ptp(returns)), 1e-8)
        return np.exp(-(returns[nearest].mean(axis=1) - low) / (self.spec.temperature * spread))

    def forget(self) -> None:
        """Empties the memory: a seeded reset draws as it did the first time."""
        self._draws.clear()
        self._returns.clear()
        self._lengths.clear()

    def episode_ended(self, draw: np.ndarray, episode_return: float, length: int) -> None:
        """Remembers an episode's draw, return and length (the oldest forgotten past ``memory``)."""
        self._draws.append(np.array(draw[self.columns]))
        self._returns.append(float(episode_return))
        self._lengths.append(max(1, int(length)))
