"""Reality-gap wrappers: one transformation each, each parameter fixed or drawn per episode.

What a real robot adds on top of the simulator's dynamics: noisy and biased sensors, noisy, delayed, weaker or
saturating actuators. Every parameter takes a number (or a per-dimension list) or a distribution from
:mod:`sim2real.randomization`, drawn at every reset (``when="reset"``) or once (``when="startup"``) from the
wrapper's own generator, seeded like the dynamics sampler from (run seed, env index).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real.errors import Sim2RealError
from sim2real.randomization import Distribution, SeededStream, SeedLike

Spec = float | Sequence[float] | Distribution


def _is_distribution(spec: Spec) -> bool:
    return hasattr(spec, "sample")


def _spec_bounds(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value a parameter can take (per dimension for lists)."""
    if _is_distribution(spec):
        low, high = spec.bounds()  # type: ignore[union-attr]
        return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    value = np.asarray(spec, dtype=np.float64)
    return value, value


class RealityGapWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Base of the reality-gap wrappers: owns the generator and draws the parameters at reset.

    Subclasses name their parameters in ``PARAMETERS`` and read the current draws from ``self.current``.
    """

    PARAMETERS: tuple[str, ...] = ()
    name = "reality_gap"

    def __init__(self, env: gym.Env, specs: dict[str, Spec], sizes: dict[str, int], seed: SeedLike, when: str) -> None:
        super().__init__(env)
        if when not in ("reset", "startup"):
            raise Sim2RealError(f"{self.name}: when must be reset or startup, got {when!r}")
        self.specs = specs
        self.sizes = sizes
        self.when = when
        self.stream = SeededStream(seed, self.name, when == "startup")
        self.current: dict[str, np.ndarray] = {}
        self.values: dict[str, float] = {}  # the randomized parameters' current values, for info and logs
        self._draw()

    @property
    def rng(self) -> np.random.Generator:
        return self.stream.rng

    def _draw(self) -> None:
        for key, spec in self.specs.items():
            size = self.sizes.get(key, 1)
            if _is_distribution(spec):
                value = spec.sample(self.rng, size)  # type: ignore[union-attr]
                self.current[key] = value
                for i, v in enumerate(value):
                    self.values[f"{self.name}/{key}" + (f"/{i}" if size > 1 else "")] = float(v)
            else:
                self.current[key] = np.broadcast_to(np.asarray(spec, dtype=np.float64), (size,)).copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        redraw = self.stream.reseed(seed) if seed is not None else False
        if self.when == "reset" or redraw:
            self._draw()
        obs, info = self.env.reset(seed=seed, options=options)
        self._on_reset()
        return self._observe(obs), self._report(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self._act(action))
        return self._observe(obs), reward, terminated, truncated, self._report(info)

    def _report(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.values:
            info.setdefault("randomization", {}).update(self.values)
        return info

    def _on_reset(self) -> None:
        """Hook for state that restarts with each episode."""

    def _observe(self, obs: Any) -> Any:
        return obs

    def _act(self, action: Any) -> Any:
        return action


def _obs_size(env: gym.Env) -> int:
    space = env.observation_space
    if not isinstance(space, spaces.Box):
        raise Sim2RealError(f"observation wrappers need a Box observation space, got {space}")
    return int(np.prod(space.shape))


def _act_space(env: gym.Env) -> spaces.Box:
    space = env.action_space
    if not isinstance(space, spaces.Box):
        raise Sim2RealError(f"action wrappers need a Box action space, got {space}")
    return space


def _std_size(name: str, std: Spec, dims: int) -> int:
    """Checks a noise level and returns how many values it takes (one per dimension, or one drawn)."""
    low, _ = _spec_bounds(std)
    if np.any(low < 0):
        raise Sim2RealError(f"{name}.std must be >= 0, got {std}")
    return 1 if _is_distribution(std) else dims


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...], std: np.ndarray) -> np.ndarray:
    return rng.normal(0.0, 1.0, shape) * (std.reshape(shape) if std.size > 1 else std[0])


class ObservationNoise(RealityGapWrapper):
    """Adds zero-mean Gaussian noise to every observation (sensor noise).

    Args:
        std: standard deviation, one number or one per observation dimension (observation units).
    """

    name = "observation_noise"

    def __init__(self, env: gym.Env, std: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, std=std, seed=seed, when=when)
        size = _std_size(self.name, std, _obs_size(env))
        super().__init__(env, {"std": std}, {"std": size}, seed, when)
        box = env.observation_space
        assert isinstance(box, spaces.Box)
        # Gaussian noise is unbounded, so a bounded space is not any more.
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=box.shape, dtype=box.dtype)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return (obs + _gaussian(self.rng, obs.shape, self.current["std"])).astype(obs.dtype, copy=False)


class ObservationBias(RealityGapWrapper):
    """Adds a constant offset per observation dimension, redrawn per episode (sensor calibration error).

    Args:
        bias: the offset, one number or one per dimension; a distribution draws each dimension independently.
    """

    name = "observation_bias"

    def __init__(self, env: gym.Env, bias: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, bias=bias, seed=seed, when=when)
        size = _obs_size(env)
        super().__init__(env, {"bias": bias}, {"bias": size}, seed, when)
        box = env.observation_space
        assert isinstance(box, spaces.Box)
        low, high = _spec_bounds(bias)
        self.observation_space = spaces.Box(
            (box.low + low).astype(box.dtype), (box.high + high).astype(box.dtype), dtype=box.dtype
        )

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return (obs + self.current["bias"].reshape(obs.shape)).astype(obs.dtype, copy=False)


class ActionNoise(RealityGapWrapper):
    """Adds zero-mean Gaussian noise to every action, then clips it to the action space (actuator noise).

    Args:
        std: standard deviation, one number or one per action dimension (action units).
    """

    name = "action_noise"

    def __init__(self, env: gym.Env, std: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, std=std, seed=seed, when=when)
        space = _act_space(env)
        size = _std_size(self.name, std, int(np.prod(space.shape)))
        super().__init__(env, {"std": std}, {"std": size}, seed, when)
        self._low, self._high = space.low, space.high

    def _act(self, action: np.ndarray) -> np.ndarray:
        noise = _gaussian(self.rng, np.shape(action), self.current["std"])
        return np.clip(action + noise, self._low, self._high).astype(self._low.dtype)


class ActionLatency(RealityGapWrapper):
    """Delays every action by ``steps`` control steps (communication and actuation latency).

    At step ``t`` the env receives the action given at step ``t - steps``; the first ``steps`` steps of an
    episode receive the action space's midpoint (zero for symmetric spaces).

    Args:
        steps: the delay in control steps; a distribution is rounded to whole steps.
    """

    name = "action_latency"

    def __init__(self, env: gym.Env, steps: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, steps=steps, seed=seed, when=when)
        space = _act_space(env)
        low, high = _spec_bounds(steps)
        if np.any(low < 0) or np.ndim(low) != 0:
            raise Sim2RealError(f"action_latency.steps must be one number >= 0, got {steps}")
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is not None and round(float(high)) >= limit:
            raise Sim2RealError(
                f"action_latency.steps can reach {round(float(high))}, not less than the episode ({limit} steps)"
            )
        super().__init__(env, {"steps": steps}, {}, seed, when)
        self._idle = ((space.low + space.high) / 2).astype(space.dtype)
        self._queue: deque[np.ndarray] = deque()

    @property
    def steps(self) -> int:
        return round(float(self.current["steps"][0]))

    def _on_reset(self) -> None:
        self._queue = deque([self._idle] * self.steps)

    def _act(self, action: np.ndarray) -> np.ndarray:
        # A copy: callers may reuse one action buffer, and the queue must hold what was sent at the time.
        self._queue.append(np.array(action, copy=True))
        return self._queue.popleft()


class ActionLag(RealityGapWrapper):
    """A first-order motor lag: the env receives the command low-pass filtered, ``u_t = u_{t-1} + a (c_t -
    u_{t-1})`` with ``a = 1 - exp(-dt / tau)``, ``tau`` the motor's time constant in seconds and ``dt`` the env's
    control period (a motor's current, a hydraulic valve or a series-elastic spring does not follow a step
    command at once; after ``tau`` seconds it has moved 63% of the way). Each episode starts from the action
    space's midpoint (no command); ``tau`` 0 passes the command through.

    Args:
        tau: the time constant in seconds (>= 0), one number or one per action dimension, or a distribution.
    """

    name = "action_lag"

    def __init__(self, env: gym.Env, tau: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, tau=tau, seed=seed, when=when)
        space = _act_space(env)
        low, _ = _spec_bounds(tau)
        if np.any(low < 0):
            raise Sim2RealError(f"action_lag.tau must be >= 0 seconds, got {tau}")
        dt = getattr(env.unwrapped, "dt", None)
        if not isinstance(dt, (int, float)) or dt <= 0:
            raise Sim2RealError(
                "action_lag needs the env's control period in seconds (env.unwrapped.dt); this env has none"
            )
        size = 1 if _is_distribution(tau) else int(np.prod(space.shape))
        super().__init__(env, {"tau": tau}, {"tau": size}, seed, when)
        self.dt = float(dt)
        self._idle = ((space.low + space.high) / 2).astype(np.float64)
        self._applied = self._idle.copy()
        self._share: np.ndarray | float = 1.0

    def _on_reset(self) -> None:
        self._applied = self._idle.copy()
        # tau is drawn at reset at the latest, so the filter's share is fixed for the episode; tau 0 is no lag
        # (a = 1), not a division by zero.
        tau = self.current["tau"]
        share = np.where(tau > 0, -np.expm1(-self.dt / np.maximum(tau, np.finfo(np.float64).tiny)), 1.0)
        self._share = share.reshape(self._applied.shape) if share.size > 1 else float(share[0])

    def _act(self, action: np.ndarray) -> np.ndarray:
        command = np.asarray(action, dtype=np.float64).reshape(self._applied.shape)
        self._applied = self._applied + self._share * (command - self._applied)
        return self._applied.reshape(np.shape(action)).astype(np.asarray(action).dtype)


class ActionScale(RealityGapWrapper):
    """Multiplies every action by ``scale`` before the env (actuator strength: 0.8 is a motor at 80%).

    Args:
        scale: the factor, one number or one per action dimension.
    """

    name = "action_scale"

    def __init__(self, env: gym.Env, scale: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale, seed=seed, when=when)
        space = _act_space(env)
        size = int(np.prod(space.shape)) if not _is_distribution(scale) else 1
        super().__init__(env, {"scale": scale}, {"scale": size}, seed, when)

    def _act(self, action: np.ndarray) -> np.ndarray:
        scale = self.current["scale"]
        return (action * (scale.reshape(np.shape(action)) if scale.size > 1 else scale[0])).astype(
            np.asarray(action).dtype
        )


class ActionSaturation(RealityGapWrapper):
    """Clips every action to a fraction ``limit`` of the action range around its midpoint (actuator saturation).

    Args:
        limit: fraction of the range in (0, 1]; 0.5 lets through half the range.
    """

    name = "action_saturation"

    def __init__(self, env: gym.Env, limit: Spec, seed: SeedLike = None, when: str = "reset") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, limit=limit, seed=seed, when=when)
        space = _act_space(env)
        low, high = _spec_bounds(limit)
        if np.any(low <= 0) or np.any(high > 1):
            raise Sim2RealError(f"action_saturation.limit must be in (0, 1], got {limit}")
        super().__init__(env, {"limit": limit}, {}, seed, when)
        self._mid = (space.low + space.high) / 2
        self._half = (space.high - space.low) / 2

    def _act(self, action: np.ndarray) -> np.ndarray:
        reach = self._half * self.current["limit"][0]
        return np.clip(action, self._mid - reach, self._mid + reach).astype(np.asarray(action).dtype)


class ObservationHistory(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The observation followed by the last ``steps`` observations and (``actions``) the last ``steps`` actions,
    newest first: ``[o_t, o_{t-1}, ..., o_{t-k}, a_{t-1}, ..., a_{t-k}]``.

    A memoryless policy that sees how its recent commands moved the system can infer the dynamics it is in
    (DORAEMON's observation history, Rapid Motor Adaptation's adaptation module). Before an episode has that
    much past, the missing observations are the first one (the system at rest) and the missing actions the
    action space's midpoint (no command). Not a reality-gap wrapper: it is the policy's input, the same in
    every domain, and it goes outside every other wrapper, so that it sees what the policy would (noisy,
    biased observations; the actions as commanded, before delays).
    """

    def __init__(self, env: gym.Env, steps: int, actions: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, steps=steps, actions=actions)
        gym.Wrapper.__init__(self, env)
        observation, action = env.observation_space, _act_space(env)
        if not isinstance(observation, spaces.Box) or len(observation.shape) != 1:
            raise Sim2RealError(f"history needs a flat Box observation space, got {observation}")
        if steps < 1:
            raise Sim2RealError(f"history.steps must be at least 1, got {steps}")
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is not None and steps >= limit:
            raise Sim2RealError(f"history.steps is {steps}, not less than the episode ({limit} steps)")
        self.steps, self.actions = steps, actions
        dtype = observation.dtype
        lows = [observation.low] * (steps + 1) + ([action.low.astype(dtype)] * steps if actions else [])
        highs = [observation.high] * (steps + 1) + ([action.high.astype(dtype)] * steps if actions else [])
        self.observation_space = spaces.Box(np.concatenate(lows), np.concatenate(highs), dtype=dtype)
        self._idle = ((action.low + action.high) / 2).astype(dtype)
        self._observations: deque[np.ndarray] = deque(maxlen=steps + 1)
        self._actions: deque[np.ndarray] = deque(maxlen=steps)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        first = np.asarray(observation, dtype=self.observation_space.dtype)
        self._observations = deque([first] * (self.steps + 1), maxlen=self.steps + 1)
        self._actions = deque([self._idle] * self.steps, maxlen=self.steps)
        return self._stacked(), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._actions.appendleft(np.asarray(action, dtype=self.observation_space.dtype).reshape(self._idle.shape))
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._observations.appendleft(np.asarray(observation, dtype=self.observation_space.dtype))
        return self._stacked(), reward, terminated, truncated, info

    def _stacked(self) -> np.ndarray:
        parts = [*self._observations, *(self._actions if self.actions else ())]
        return np.concatenate(parts).astype(self.observation_space.dtype, copy=False)
