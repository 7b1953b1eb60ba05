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

import gymnasium as gym

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


def _register() -> None:
    for name in GYMNASIUM_MUJOCO:
        env_id = f"Sim2Real/{name}-v0"
        if env_id in gym.registry:
            continue
        base = gym.spec(f"{name}-v5")
        gym.register(
            id=env_id,
            entry_point="sim2real.domain:make_registered",
            kwargs={"base": f"{name}-v5"},
            max_episode_steps=base.max_episode_steps,
            reward_threshold=base.reward_threshold,
        )
    if "Sim2Real/BlockPush-v0" not in gym.registry:
        gym.register(
            id="Sim2Real/BlockPush-v0",
            entry_point="sim2real.domain:make_registered",
            kwargs={"base": "sim2real_envs.block_push:BlockPushEnv"},
            max_episode_steps=200,
        )


_register()
