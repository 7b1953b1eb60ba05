"""sim2real's environment package: ``Sim2Real/<Env>-v0`` gymnasium ids and MJCF assets of our own.

Importing it registers, for every MuJoCo env of gymnasium's v5 suite, an id that takes a domain's dynamics
changes as keyword arguments::

    import gymnasium as gym
    import sim2real_envs  # or gym.make("sim2real_envs:Sim2Real/Hopper-v0", ...)

    env = gym.make("Sim2Real/Hopper-v0", dynamics=[{"quantity": "body_mass", "select": "torso", "scale": 1.5}])
    env = gym.make("Sim2Real/Hopper-v0", config="configs/hopper/nominal.yaml", domain="heavy_torso")

and our own envs (``Sim2Real/BlockPush-v0``), which take the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
from pydantic import ValidationError

from sim2real.config import DynamicsChange, load_config
from sim2real.domain import DomainSpec, DynamicsWrapper, change_of
from sim2real.dynamics import Change
from sim2real.errors import Sim2RealError
from sim2real.randomization import RandomChange, SeedLike

GYMNASIUM_MUJOCO = (
    "Ant",
    "HalfCheetah",
    "Hopper",
    "Humanoid",
    "HumanoidStandup",
    "InvertedDoublePendulum",
    "InvertedPendulum",
    "Pusher",
    "Reacher",
    "Swimmer",
    "Walker2d",
)


def make_registered(
    base: str,
    dynamics: Sequence[Mapping[str, Any] | Change | RandomChange] | None = None,
    config: str | None = None,
    domain: str = "source",
    seed: SeedLike = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Entry point of the ``Sim2Real/<Env>-v0`` ids.

    Args:
        base: the env the id wraps: a gymnasium id (``Hopper-v5``) or an entry point (``module:Class``).
        dynamics: changes as in a config's ``dynamics`` list (dicts with quantity, select, scale/set/offset;
            the value may be a distribution).
        config: path of a sim2real config; its ``domain`` supplies the changes, reality-gap wrappers and
            ``env_kwargs``.
        domain: ``source`` or a target name of ``config``.
        seed: seeds the domain's random draws (else ``reset(seed=...)`` does).
        env_kwargs: keyword arguments of the base env.
    """
    changes: list[Change | RandomChange] = []
    reality_gap: tuple[Callable[..., gym.Env], ...] = ()
    adr_boundary_probability = 0.5
    if config is not None:
        cfg = load_config(config)
        domains = cfg.domains()
        if domain not in domains:
            raise Sim2RealError(f"{config}: no domain '{domain}'; domains: {', '.join(domains)}")
        spec = DomainSpec.from_config(domains[domain])
        changes.extend(spec.changes)
        reality_gap = spec.reality_gap
        adr_boundary_probability = spec.adr_boundary_probability
        env_kwargs = {**cfg.env_kwargs, **env_kwargs}
    for item in dynamics or []:
        if isinstance(item, Change | RandomChange):
            changes.append(item)
            continue
        try:
            changes.append(change_of(DynamicsChange.model_validate(item)))
        except ValidationError as error:
            raise Sim2RealError(f"dynamics {dict(item)}: {error.errors()[0]['msg']}") from None
    env: gym.Env
    if ":" in base:
        env = gym.envs.registration.load_env_creator(base)(**env_kwargs)  # type: ignore[assignment]
    else:
        env = gym.make(base, disable_env_checker=True, **env_kwargs).unwrapped
    env = DynamicsWrapper(env, changes, seed=seed, adr_boundary_probability=adr_boundary_probability)
    for make_wrapper in reality_gap:
        env = make_wrapper(env, seed=seed)
    return env


def _register() -> None:
    for name in GYMNASIUM_MUJOCO:
        env_id = f"Sim2Real/{name}-v0"
        if env_id in gym.registry:
            continue
        base = gym.spec(f"{name}-v5")
        gym.register(
            id=env_id,
            entry_point="sim2real_envs:make_registered",
            kwargs={"base": f"{name}-v5"},
            max_episode_steps=base.max_episode_steps,
            reward_threshold=base.reward_threshold,
        )
    if "Sim2Real/BlockPush-v0" not in gym.registry:
        gym.register(
            id="Sim2Real/BlockPush-v0",
            entry_point="sim2real_envs:make_registered",
            kwargs={"base": "sim2real_envs.block_push:BlockPushEnv"},
            max_episode_steps=200,
        )


_register()
