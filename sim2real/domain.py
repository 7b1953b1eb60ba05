"""Domains as gymnasium envs: a base MuJoCo env with a domain's dynamics changes applied.

Two ways in, both ending in :class:`DynamicsWrapper`:

- :func:`make_domain_env` builds any registered MuJoCo env id with a list of changes (what sim2real uses).
- ``gym.make("Sim2Real/<Env>-v0", dynamics=[...])`` or ``gym.make("Sim2Real/<Env>-v0", config=PATH,
  domain=NAME)`` for plain gymnasium / stable-baselines3 / RL Zoo users (registered by ``sim2real_envs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import mujoco
from pydantic import ValidationError

from sim2real.dynamics import Change, Dynamics
from sim2real.errors import Sim2RealError


class DynamicsWrapper(gym.Wrapper):
    """Holds a MuJoCo env's :class:`~sim2real.dynamics.Dynamics` and applies a domain's changes to it.

    Args:
        env: an env whose ``unwrapped.model`` is an ``mujoco.MjModel``.
        changes: dynamics changes from the nominal model, applied at once and kept for the env's lifetime.
        check_friction: warn about friction changes that cannot take effect (off for the copies of a domain
            that was already checked, so a vector env does not repeat the warning per worker).
    """

    def __init__(self, env: gym.Env, changes: Iterable[Change] = (), check_friction: bool = True) -> None:
        super().__init__(env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            raise Sim2RealError(f"env '{name}' is not a MuJoCo env (it has no mujoco.MjModel)")
        self.dynamics = Dynamics(model)
        self.check_friction = check_friction
        self.set_changes(changes)

    def set_changes(self, changes: Iterable[Change]) -> None:
        """Replaces the domain's changes (computed from nominal, so nothing compounds)."""
        self.changes = list(changes)
        self.dynamics.apply(self.changes, check_friction=self.check_friction)

    def domain_parameters(self) -> dict[str, float]:
        """Every model value this domain has moved away from nominal, as ``{"quantity/element": value}``."""
        return self.dynamics.changed()


def find_dynamics_wrapper(env: gym.Env) -> DynamicsWrapper | None:
    """The :class:`DynamicsWrapper` in ``env``'s wrapper chain, if any."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, DynamicsWrapper):
            return env
        env = env.env
    return None


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    import sim2real_envs  # noqa: F401  (registers the Sim2Real/ ids)

    try:
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


def make_domain_env(
    env_id: str, changes: Iterable[Change] = (), *, check_friction: bool = True, **env_kwargs: Any
) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` with ``changes`` applied to its MuJoCo model.

    Ids of the ``Sim2Real/`` namespace already carry a :class:`DynamicsWrapper` (with the changes their own
    ``dynamics``/``config`` keywords asked for); ``changes`` are applied after those.
    """
    env = _make(env_id, **env_kwargs)
    wrapper = find_dynamics_wrapper(env)
    if wrapper is None:
        return DynamicsWrapper(env, changes, check_friction)
    wrapper.check_friction = check_friction
    wrapper.set_changes([*wrapper.changes, *changes])
    return env


def make_registered(
    base: str,
    dynamics: Sequence[Mapping[str, Any] | Change] | None = None,
    config: str | None = None,
    domain: str = "source",
    **env_kwargs: Any,
) -> gym.Env:
    """Entry point of the ``Sim2Real/<Env>-v0`` ids.

    Args:
        base: the env the id wraps: a gymnasium id (``Hopper-v5``) or an entry point (``module:Class``).
        dynamics: changes as in a config's ``dynamics`` list (dicts with quantity, select, scale/set/offset).
        config: path of a sim2real config; its ``domain`` supplies the changes and its ``env_kwargs``.
        domain: ``source`` or a target name of ``config``.
        env_kwargs: keyword arguments of the base env.
    """
    from sim2real.config import DynamicsChange, load_config

    changes: list[Change] = []
    if config is not None:
        cfg = load_config(config)
        domains = cfg.domains()
        if domain not in domains:
            raise Sim2RealError(f"{config}: no domain '{domain}'; domains: {', '.join(domains)}")
        changes.extend(domains[domain].changes())
        env_kwargs = {**cfg.env_kwargs, **env_kwargs}
    for item in dynamics or []:
        if isinstance(item, Change):
            changes.append(item)
            continue
        try:
            changes.append(DynamicsChange.model_validate(item).to_change())
        except ValidationError as error:
            raise Sim2RealError(f"dynamics {dict(item)}: {error.errors()[0]['msg']}") from None
    env: gym.Env
    if ":" in base:
        env = gym.envs.registration.load_env_creator(base)(**env_kwargs)  # type: ignore[assignment]
    else:
        env = gym.make(base, disable_env_checker=True, **env_kwargs).unwrapped
    return DynamicsWrapper(env, changes)
