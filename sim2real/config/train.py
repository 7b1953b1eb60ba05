"""Schema of the training, evaluation and run-folder settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim2real.config.common import FiniteFloat, Name, Strict


class NormalizeConfig(Strict):
    """Running normalization of observations and rewards (stable-baselines3's VecNormalize)."""

    observations: bool = True
    rewards: bool = True
    clip_obs: Annotated[float, Field(gt=0)] = 10.0


class TrainConfig(Strict):
    """Training: the budget, parallel environments, normalization, seed, checkpoints and device."""

    total_timesteps: Annotated[int, Field(gt=0)] = Field(100_000, description="environment steps to train")
    n_envs: Annotated[int, Field(ge=1, le=256)] = Field(1, description="parallel environments")
    vec_env: Literal["dummy", "subproc"] = Field("dummy", description="in-process or one process per env")
    start_method: Literal["fork", "spawn", "forkserver"] | None = Field(
        None, description="how subproc workers start (default: forkserver where available)"
    )
    normalize: NormalizeConfig | None = Field(None, description="VecNormalize settings; absent: off")
    seed: Annotated[int, Field(ge=0)] = 0
    checkpoint_every: Annotated[int, Field(gt=0)] = Field(50_000, description="steps between checkpoints")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    torch_threads: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="CPU threads for torch (default: torch's choice); 1 when several runs share the machine",
    )
    progress_bar: bool = True


class EvalConfig(Strict):
    """The evaluation after training, on the source and every target."""

    episodes: Annotated[int, Field(ge=1)] = Field(10, description="episodes per domain")
    curve_points: Annotated[int, Field(ge=1)] = Field(
        5,
        description="points of a run's evaluation curve on the source and every target (TensorBoard's "
        "eval/<domain>/*, the same seeded episodes at each): step 0, the first rollout past each of evenly spaced "
        "steps, and the final evaluation; 1: the final evaluation only (a transfer run's curve on its target "
        "is transfer.eval_every's)",
    )
    deterministic: bool = True
    success_threshold: FiniteFloat | None = Field(None, description="an episode with at least this return succeeds")


class RunConfig(Strict):
    """Where the run folder goes."""

    root: str = Field("runs", description="folder holding every run")
    experiment: Name = Field("default", description="runs land in <root>/<env>/<experiment>/seed_<seed>")
    folder: str | None = Field(None, description="the run folder itself, instead of the one under root")
