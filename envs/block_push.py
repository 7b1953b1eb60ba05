"""BlockPush: push a block along the floor to a target position with one motor.

The block (1 kg) slides on the floor with Coulomb friction; the motor's peak force (gear 10 N) is about twice
the friction force, so friction and mass shifts change how hard the policy has to push: a small env that shows
a sim-to-real gap within a minute of training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils import EzPickle

ASSET = Path(__file__).with_name("assets") / "block_push.xml"


class BlockPushEnv(MujocoEnv, EzPickle):
    """Observation: [block x - target x (m), block x velocity (m/s), target x (m)]; action: motor command in [-1, 1].

    Reward per step: ``-distance_cost_weight * |x - target|`` minus ``ctrl_cost_weight * action^2``; the two
    terms are in ``info`` as ``reward_distance`` and ``reward_ctrl``.

    Args:
        target_range: the target is drawn uniformly from [-target_range, target_range] at reset (m).
        distance_cost_weight: weight of the distance term (1/m).
        ctrl_cost_weight: weight of the control term.
        frame_skip: physics steps per action (each 0.01 s).
    """

    # render_fps depends on frame_skip, so it is set per instance after MujocoEnv has computed dt.
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}  # noqa: RUF012

    def __init__(
        self,
        target_range: float = 1.0,
        distance_cost_weight: float = 1.0,
        ctrl_cost_weight: float = 0.05,
        frame_skip: int = 5,
        **kwargs: Any,
    ) -> None:
        EzPickle.__init__(self, target_range, distance_cost_weight, ctrl_cost_weight, frame_skip, **kwargs)
        self.target_range = target_range
        self.distance_cost_weight = distance_cost_weight
        self.ctrl_cost_weight = ctrl_cost_weight
        self.target = 0.0
        observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float64)
        MujocoEnv.__init__(self, str(ASSET), frame_skip, observation_space=observation_space, **kwargs)
        self.metadata = {**type(self).metadata, "render_fps": int(np.round(1.0 / self.dt))}
        self._target_site = self.model.site("target").id

    def _get_obs(self) -> np.ndarray:
        x, _ = self.data.qpos
        vx, _ = self.data.qvel
        return np.array([x - self.target, vx, self.target], dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        self.do_simulation(action, self.frame_skip)
        observation = self._get_obs()
        reward_distance = -self.distance_cost_weight * abs(float(observation[0]))
        reward_ctrl = -self.ctrl_cost_weight * float(np.sum(np.square(action)))
        info = {
            "reward_distance": reward_distance,
            "reward_ctrl": reward_ctrl,
            "x_position": float(self.data.qpos[0]),
        }
        if self.render_mode == "human":
            self.render()
        return observation, reward_distance + reward_ctrl, False, False, info

    def reset_model(self) -> np.ndarray:
        self.target = float(self.np_random.uniform(-self.target_range, self.target_range))
        self.model.site_pos[self._target_site, 0] = self.target
        qpos = self.init_qpos.copy()
        qpos[0] = self.np_random.uniform(-0.05, 0.05)
        self.set_state(qpos, self.init_qvel.copy())
        return self._get_obs()
