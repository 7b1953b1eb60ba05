"""Domains as gymnasium envs: a base MuJoCo env with a domain's dynamics changes applied.

Two ways in, both ending in :class:`DynamicsWrapper`:

- :func:`make_domain_env` builds any registered MuJoCo env id with a list of changes (what sim2real uses).
- ``gym.make("Sim2Real/<Env>-v0", dynamics=[...])`` or ``gym.make("Sim2Real/<Env>-v0", config=PATH,
  domain=NAME)`` for plain gymnasium / stable-baselines3 / RL Zoo users (registered by ``sim2real_envs``).

A config's domain section becomes a :class:`DomainSpec` here (:meth:`DomainSpec.from_config`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, SupportsFloat

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel

import sim2real.wrappers as gap
from sim2real.config import (
    ChoiceDist,
    Config,
    DistributionConfig,
    DynamicsChange,
    HistoryConfig,
    LogUniformDist,
    NormalDist,
    PrivilegedTerm,
    RealityGap,
    SamplingConfig,
    UniformDist,
)
from sim2real.config import Domain as DomainConfig
from sim2real.dynamics import Change, Dynamics
from sim2real.errors import Sim2RealError
from sim2real.randomization import (
    AdrRange,
    Choice,
    Distribution,
    DynamicsRandomizer,
    LogUniform,
    Normal,
    RandomChange,
    SeedLike,
    Uniform,
)
from sim2real.sampling import SamplingSpec

# The reality-gap section's keys and the wrapper each one makes, innermost first.
_REALITY_GAP: dict[str, type[gap.RealityGapWrapper]] = {
    "observation_bias": gap.ObservationBias,
    "observation_noise": gap.ObservationNoise,
    "action_scale": gap.ActionScale,
    "action_saturation": gap.ActionSaturation,
    "action_lag": gap.ActionLag,
    "action_noise": gap.ActionNoise,
    "action_latency": gap.ActionLatency,
}


@dataclass(frozen=True)
class DomainSpec:
    """Everything that makes a domain: dynamics changes (fixed or random) and reality-gap wrappers.

    Args:
        changes: fixed and random dynamics changes; random ones are applied after fixed ones.
        reality_gap: wrapper factories ``f(env, seed=...)`` (see :mod:`sim2real.wrappers`), innermost first.
        adr_boundary_probability: share of resets that pin one ADR parameter at a boundary.
        sampling: how training weights the reset draws by its recent episodes (:mod:`sim2real.sampling`).
    """

    changes: tuple[Change | RandomChange, ...] = ()
    reality_gap: tuple[Callable[..., gym.Env], ...] = ()
    adr_boundary_probability: float = 0.5
    sampling: SamplingSpec | None = None

    @classmethod
    def from_config(cls, domain: DomainConfig, training: bool = False) -> DomainSpec:
        """The runtime objects a config's domain section describes: changes, distributions, wrapper factories.

        Built here, where config meets the simulator, so the schema stays a schema and the randomization and
        wrapper modules stay usable without any file format. ``training``: the training envs' variant, the
        only one whose draws follow ``sampling`` (an evaluation on the domain measures its distribution as
        written).
        """
        sampling = domain.sampling if training else None
        return cls(
            changes=tuple(change_of(d) for d in domain.dynamics),
            reality_gap=reality_gap_of(domain.reality_gap),
            adr_boundary_probability=domain.adr.boundary_probability if domain.adr else 0.5,
            sampling=None if sampling is None else sampling_of(sampling),
        )

    @property
    def randomized(self) -> bool:
        """Whether anything is drawn: a random dynamics change or a reality-gap wrapper (noise, latency...)."""
        return bool(self.reality_gap) or any(isinstance(c, RandomChange) for c in self.changes)


def sampling_of(config: SamplingConfig) -> SamplingSpec:
    """The runtime settings of a ``sampling`` section (its quantities as a tuple: the spec is frozen)."""
    quantities = None if config.quantities is None else tuple(config.quantities)
    return SamplingSpec(**{**config.model_dump(), "quantities": quantities})


def distribution_of(config: DistributionConfig) -> Distribution:
    """The sampler of a ``{dist: ...}`` mapping."""
    if isinstance(config, UniformDist):
        return Uniform(config.low, config.high)
    if isinstance(config, LogUniformDist):
        return LogUniform(config.low, config.high)
    if isinstance(config, NormalDist):
        return Normal(config.mean, config.std, config.low, config.high)
    if isinstance(config, ChoiceDist):
        return Choice(tuple(config.values))
    assert config.start is not None, "set by DynamicsChange"
    return AdrRange(config.low, config.high, config.start)


def change_of(config: DynamicsChange) -> Change | RandomChange:
    """A config's dynamics change: fixed (a number or a list) or random (a distribution)."""
    op = config.op
    value = getattr(config, op)
    if isinstance(value, BaseModel):
        return RandomChange(quantity=config.quantity, op=op, distribution=distribution_of(value),  # type: ignore[arg-type]
                            select=config.select, when=config.when or "reset", every=config.every,
                            shared=config.shared)  # fmt: skip
    return Change(quantity=config.quantity, op=op, value=value, select=config.select)


def reality_gap_of(config: RealityGap) -> tuple[Callable[..., gym.Env], ...]:
    """Wrapper factories ``f(env, seed=...)`` for a domain's reality-gap section, innermost first."""
    factories = []
    for name, wrapper in _REALITY_GAP.items():
        term = getattr(config, name)
        if term is None:
            continue
        kwargs: dict[str, Any] = {
            key: distribution_of(value) if isinstance(value, BaseModel) else value  # type: ignore[arg-type]
            for key, value in term
            if key != "when"
        }
        factories.append(partial(wrapper, when=term.when, **kwargs))
    return tuple(factories)


class DynamicsWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Holds a MuJoCo env's :class:`~sim2real.dynamics.Dynamics` and applies a domain's changes to it.

    Fixed changes hold for the env's lifetime. Random changes are drawn inside the env's own ``reset`` (and
    ``step``, for interval terms), so they hold when vector envs auto-reset; the current draws are in every
    ``info["randomization"]``.

    Args:
        env: an env whose ``unwrapped.model`` is an ``mujoco.MjModel``.
        changes: dynamics changes from the nominal model (:class:`Change` or :class:`RandomChange`).
        check_friction: warn about friction changes that cannot take effect (off for the copies of a domain
            that was already checked, so a vector env does not repeat the warning per worker).
        seed: seeds the random changes: (run seed, env index), or an int; None: fresh entropy until
            ``reset(seed=...)``.
        adr_boundary_probability: share of resets that pin one ADR parameter at a boundary.
        sampling: how the reset draws are weighted by the env's recent episodes; None: as the distributions say.
    """

    def __init__(
        self,
        env: gym.Env,
        changes: Iterable[Change | RandomChange] = (),
        check_friction: bool = True,
        seed: SeedLike = None,
        adr_boundary_probability: float = 0.5,
        sampling: SamplingSpec | None = None,
    ) -> None:
        changes = list(changes)  # read once: recorded for gymnasium's env spec, then applied
        gym.utils.RecordConstructorArgs.__init__(
            self, changes=changes, check_friction=check_friction, seed=seed,
            adr_boundary_probability=adr_boundary_probability, sampling=sampling,
        )  # fmt: skip
        gym.Wrapper.__init__(self, env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            raise Sim2RealError(f"env '{name}' is not a MuJoCo env (it has no mujoco.MjModel)")
        self.dynamics = Dynamics(model)
        self.check_friction = check_friction
        self.seed = seed
        self.adr_boundary_probability = adr_boundary_probability
        self.sampling = sampling
        self.randomizer: DynamicsRandomizer | None = None
        self._return, self._length = 0.0, 0  # the episode's so far, for the sampler
        self.set_changes(changes)

    def set_changes(self, changes: Iterable[Change | RandomChange]) -> None:
        """Replaces the domain's changes (computed from nominal, so nothing compounds)."""
        self.changes = list(changes)
        fixed = [c for c in self.changes if isinstance(c, Change)]
        random = [c for c in self.changes if isinstance(c, RandomChange)]
        self.dynamics.apply(fixed, check_friction=self.check_friction)
        self.randomizer = None
        if random:
            self.randomizer = DynamicsRandomizer(self.dynamics, fixed, random, self.seed, self.adr_boundary_probability,
                                                 self.sampling)  # fmt: skip
            if self.check_friction:
                self.randomizer.warn_friction()
            self.randomizer.startup()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        randomizer = self.randomizer
        if randomizer is None:
            return self.env.reset(seed=seed, options=options)
        if randomizer.sampler is not None and self._length:
            # An episode cut short from outside: a time limit wrapped around this wrapper (the Sim2Real/ ids
            # register theirs outside it), which the sampler must see as the episode's end.
            randomizer.episode_ended(self._return, self._length)
        if seed is not None:
            randomizer.reseed(seed)
        self._return, self._length = 0.0, 0
        randomizer.on_reset()
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._report(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        randomizer = self.randomizer
        if randomizer is None:
            return self.env.step(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        # Inline rather than _report(): this runs every step. The episode's ADR tag is read before an interval
        # draw could change it.
        info["randomization"] = randomizer.values.copy()
        if randomizer.adr_boundary is not None:
            info["adr_boundary"] = randomizer.adr_boundary
        if terminated or truncated:  # where in each reset draw's range the episode ran (a share, 0 to 1)
            info["randomization_share"] = randomizer.reset_shares()
        if randomizer.sampler is not None:
            self._return, self._length = self._return + float(reward), self._length + 1
            if terminated or truncated:
                randomizer.episode_ended(self._return, self._length)
                self._return, self._length = 0.0, 0
        if randomizer.interval_terms:
            randomizer.on_step()
        return obs, reward, terminated, truncated, info

    def _report(self, info: dict[str, Any]) -> dict[str, Any]:
        assert self.randomizer is not None
        # A fresh dict per call: users keep infos, and a shared one would change under them.
        info["randomization"] = self.randomizer.values.copy()
        if self.randomizer.adr_boundary is not None:
            info["adr_boundary"] = self.randomizer.adr_boundary
        return info

    def domain_parameters(self) -> dict[str, float]:
        """Every model value this domain has moved away from nominal, as ``{"quantity/element": value}``."""
        return self.dynamics.changed()

    def randomization_values(self) -> dict[str, float]:
        """The random changes' current draws (scale factors, values or offsets), by ``quantity/element``."""
        return dict(self.randomizer.values) if self.randomizer else {}

    def set_adr_bounds(self, bounds: dict[str, Sequence[float]]) -> None:
        """Sets the current ADR ranges (called by the trainer's ADR callback)."""
        if self.randomizer is not None:
            self.randomizer.set_adr_bounds(bounds)

    def adr_bounds(self) -> dict[str, list[float]]:
        """The current ADR ranges by parameter name."""
        return {k: list(v) for k, v in self.randomizer.adr_bounds.items()} if self.randomizer else {}

    def adr_limits(self) -> dict[str, tuple[float, float, float]]:
        """Each ADR parameter's (lowest, highest, start) value."""
        return self.randomizer.adr_limits() if self.randomizer else {}


def find_dynamics_wrapper(env: gym.Env) -> DynamicsWrapper | None:
    """The :class:`DynamicsWrapper` in ``env``'s wrapper chain, if any."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, DynamicsWrapper):
            return env
        env = env.env
    return None


class PrivilegedObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The observation followed by the current values of some dynamics quantities: a privileged teacher's input
    (Rapid Motor Adaptation's first phase), which a robot would not have.

    Each value is read from the model, in the units its source drew it in: a factor of nominal for ``scale``, the
    value for ``set``, the difference from nominal for ``offset``. On the randomized source these are the
    randomizer's draws (``info["randomization"]``); on any other domain (a target, a sweep's grid point) they are
    that domain's values, so a teacher can be evaluated anywhere. A shared term is one input per column (a
    ``scale``: the total over its elements against the nominal total, which is the common factor; otherwise the
    mean); a per-element one gives each element (and column) its own input. Read after every reset and step, so an
    interval draw that changes the model mid-episode is seen from the next step on.

    Args:
        env: a domain env (it has a :class:`DynamicsWrapper`).
        terms: the quantities, as a teacher's config spells them out (``Config.privileged_terms``).
    """

    def __init__(self, env: gym.Env, terms: Sequence[PrivilegedTerm]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, terms=terms)
        gym.Wrapper.__init__(self, env)
        wrapper = find_dynamics_wrapper(env)
        observation = env.observation_space
        if wrapper is None:
            raise Sim2RealError("privileged inputs are read from a domain env's model; this env has none")
        if not isinstance(observation, spaces.Box) or len(observation.shape) != 1:
            raise Sim2RealError(f"privileged inputs need a flat Box observation space, got {observation}")
        if not terms:
            raise Sim2RealError("privileged: no quantities to read")
        dynamics = wrapper.dynamics
        self._reads: list[tuple[np.ndarray | None, np.ndarray, np.ndarray, str, bool]] = []
        size = 0
        for term in terms:
            (resolved,) = dynamics.resolve([Change(term.quantity, term.op, 1.0, term.select)])
            view = dynamics.writable_view(term.quantity)
            nominal = dynamics.nominal_values(term.quantity)[resolved.rows]
            self._reads.append((view, resolved.rows, nominal, term.op, term.shared))
            size += nominal.shape[1] if term.shared else nominal.size
        self._model = dynamics.model
        self.size = size
        dtype = observation.dtype
        self.observation_space = spaces.Box(
            np.concatenate([observation.low, np.full(size, -np.inf, dtype=dtype)]),
            np.concatenate([observation.high, np.full(size, np.inf, dtype=dtype)]),
            dtype=dtype,
        )

    def values(self) -> np.ndarray:
        """The privileged inputs now, in the units of the source's draws."""
        parts = []
        for view, rows, nominal, op, shared in self._reads:
            current = view[rows] if view is not None else np.array([[self._model.opt.timestep]])
            if op == "scale" and shared:  # the common factor: elements with a zero nominal (nothing scaled) add 0
                total = nominal.sum(axis=0)
                parts.append(np.divide(current.sum(axis=0), total, out=np.ones_like(total), where=total != 0))
                continue
            if op == "scale":  # a factor of nominal; a zero nominal (nothing to scale) reads as the value itself
                value = np.divide(current, nominal, out=current.astype(np.float64), where=nominal != 0)
            elif op == "offset":
                value = current - nominal
            else:
                value = np.asarray(current, dtype=np.float64)
            parts.append(value.mean(axis=0) if shared else value.ravel())
        return np.concatenate(parts).astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        return np.concatenate([observation, self.values()]), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return np.concatenate([observation, self.values()]), reward, terminated, truncated, info


class TeacherView(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A student's env: the policy gets the observation without the privileged inputs, and the teacher's whole
    observation goes to ``info["teacher_observation"]``, so that one env serves both (the student acts, the
    teacher is asked what it would have done in the same state).

    Args:
        env: a :class:`PrivilegedObservation` env (the teacher's input).
    """

    def __init__(self, env: PrivilegedObservation) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        observation = env.observation_space
        assert isinstance(observation, spaces.Box)
        self._size = observation.shape[0] - env.size
        self.observation_space = spaces.Box(observation.low[: self._size], observation.high[: self._size],
                                            dtype=observation.dtype)  # fmt: skip

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        info["teacher_observation"] = observation
        return observation[: self._size], info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        info["teacher_observation"] = observation
        return observation[: self._size], reward, terminated, truncated, info


# Our own ids live in the env package, one layer up; gymnasium's ``module:id`` form imports it on demand, so
# this module never imports the package whose entry points point back here.
_ENV_PACKAGE = "sim2real_envs"


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    try:
        if env_id.startswith("Sim2Real/") and env_id not in gym.registry:
            return gym.make(f"{_ENV_PACKAGE}:{env_id}", **kwargs)
        return gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        mujoco_ids = sorted(
            k
            for k, spec in gym.registry.items()
            if isinstance(spec.entry_point, str)
            and ("mujoco" in spec.entry_point or k.startswith("Sim2Real/"))
            and not k.endswith(("-v2", "-v3", "-v4"))
        )
        raise Sim2RealError(f"unknown env '{env_id}' ({error}); MuJoCo envs: {', '.join(mujoco_ids)}") from None
    except TypeError as error:
        raise Sim2RealError(f"env '{env_id}': bad env_kwargs ({error})") from None


def check_env_id(env_id: str) -> None:
    """Raises :class:`Sim2RealError` naming the MuJoCo envs when ``env_id`` is not a registered env."""
    try:
        if env_id.startswith("Sim2Real/") and env_id not in gym.registry:
            gym.spec(f"{_ENV_PACKAGE}:{env_id}")
        else:
            gym.spec(env_id)
    except gym.error.Error as error:
        raise Sim2RealError(f"unknown env '{env_id}' ({error})") from None


def make_domain_env(
    env_id: str,
    spec: DomainSpec | DomainConfig | Iterable[Change | RandomChange] = (),
    *,
    seed: SeedLike = None,
    check_friction: bool = True,
    history: HistoryConfig | None = None,
    privileged: Sequence[PrivilegedTerm] | None = None,
    teacher: Sequence[PrivilegedTerm] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` turned into a domain: its dynamics changes and reality-gap wrappers.

    Args:
        env_id: a registered MuJoCo env id.
        spec: a :class:`DomainSpec`, a config's domain section, or just a list of dynamics changes.
        seed: seeds the domain's random draws: (run seed, env index) or an int.
        check_friction: warn about friction changes that MuJoCo's contact combination overrides.
        history: the policy's recent past appended to the observation (a config's ``history``).
        privileged: a teacher's privileged inputs appended after it (``Config.privileged_terms()``), outermost.
        teacher: a student's env: its teacher's privileged inputs (the teacher's config's terms), which the
            teacher's observation gets in ``info["teacher_observation"]`` (:class:`TeacherView`), inside
            the student's history.
        env_kwargs: keyword arguments of the env.

    Ids of the ``Sim2Real/`` namespace already carry a :class:`DynamicsWrapper` (with the changes their own
    ``dynamics``/``config`` keywords asked for); the domain's changes are applied after those.
    """
    if isinstance(spec, DomainConfig):
        spec = DomainSpec.from_config(spec)
    elif not isinstance(spec, DomainSpec):
        spec = DomainSpec(changes=tuple(spec))
    env = _make(env_id, **env_kwargs)
    wrapper = find_dynamics_wrapper(env)
    if wrapper is None:
        env = DynamicsWrapper(env, spec.changes, check_friction, seed, spec.adr_boundary_probability, spec.sampling)
    else:
        wrapper.check_friction = check_friction
        wrapper.seed = seed
        wrapper.adr_boundary_probability = spec.adr_boundary_probability
        wrapper.sampling = spec.sampling
        wrapper.set_changes([*wrapper.changes, *spec.changes])
    for make_wrapper in spec.reality_gap:
        env = make_wrapper(env, seed=seed)
    if teacher:
        env = TeacherView(PrivilegedObservation(env, teacher))
    if history is not None:
        env = gap.ObservationHistory(env, history.steps, history.actions)
    if privileged:
        env = PrivilegedObservation(env, privileged)
    return env


def check_domains(config: Config) -> dict[str, dict[str, float]]:
    """Builds every domain's env once so a bad name or value fails before anything is written.

    Returns each domain's changed model values (``{"quantity/element": value}``).
    """
    parameters = {}
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    for name, domain in config.domains().items():
        section = "source" if name == "source" else f"targets.{name}"
        try:
            env = make_domain_env(config.env, DomainSpec.from_config(domain), seed=(config.train.seed, 0),
                                  history=config.history, privileged=config.privileged_terms(),
                                  **env_kwargs)  # fmt: skip
        except Sim2RealError as error:  # found by the physics, after the schema: say where, as schema errors do
            raise Sim2RealError(f"{config.origin}: {section}: {error}") from None
        wrapper = find_dynamics_wrapper(env)
        parameters[name] = wrapper.domain_parameters() if wrapper else {}
        env.close()
    return parameters
