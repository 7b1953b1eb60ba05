"""``sim2real adapt``: the sim-to-real loop on one target, spending a budget of target steps where it pays best.

The target (a stand-in robot, or the robot itself) is the scarce resource; the simulator is not. So the loop:

1. **record**: the source's mean action for a few episodes on the target, which is both its zero-shot return and
   the data for identification (what a robot logs: observations and commands, unless ``record: states``). A
   recording the user brings replaces it.
2. **identify**: fits ``adapt.params`` (and the motor delay among ``adapt.latency``) to that recording.
3. **simulate**: fine-tunes the source in simulation on the identified domain (the estimate, or randomized over its
   uncertainty). Simulation steps cost no target steps; they are reported apart.
4. **choose**: the simulation-trained policy on the target's first episodes (the same start states as the
   recording's first), against the source's return on them: the better one is the start.
5. **finetune**: a guarded transfer run on the target from that start, with the budget that is left.

Every target step counts (recording, evaluations, the fine-tuning's own checks and points), and the run's
budget is one of target steps. Each stage writes its part of one folder (:class:`~sim2real.runs.AdaptFolder`)
and ``adapt.json`` after it, so a stopped loop resumes where it stopped and repeats nothing. The curve file and
TensorBoard (``adapt/return`` against target steps) hold the return the loop would hand over after each stage.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console

from sim2real.config import AdaptConfig, Config, TransferConfig, dump_config, load_config, parse_config
from sim2real.errors import Sim2RealError
from sim2real.io import write_json
from sim2real.runs import AdaptFolder, RunFolder

__all__ = ["AdaptResult", "adapt", "adapt_finished"]

STAGES = ("record", "identify", "simulate", "choose", "finetune")


@dataclass
class AdaptResult:
    folder: Path
    policy: Path  # the run folder (or model) of the policy the loop hands over
    final_return: float  # its return on the target, as last measured
    target_steps: int  # every target step the loop took
    simulation_steps: int
    state: dict[str, Any]  # adapt.json


def adapt(
    config: Config,
    source: Path,
    *,
    settings: AdaptConfig | None = None,
    seed: int = 0,
    out: Path | None = None,
    recording: Path | None = None,
    console: Console | None = None,
    trust_source: bool = False,
    command: str = "",
) -> AdaptResult:
    """Runs (or resumes) the loop of :mod:`sim2real.adapt` from ``source`` on ``config``'s target.

    Args:
        config: the experiment: its env, the target (``settings.target``), and the transfer settings of the
            final fine-tuning (its ``transfer`` section, with method ``finetune`` on the target).
        source: the source's run folder (or model zip).
        settings: the loop's (default: ``config.adapt``, else :class:`AdaptConfig`'s defaults).
        seed: seeds the recording, the identification and both training runs.
        out: the loop's folder (default: :meth:`AdaptFolder.default`); an existing one with the same settings
            is resumed.
        recording: the target's recording (``.npz``/``.csv``), instead of recording the source there; its steps
            are charged to the budget.

    Raises:
        Sim2RealError: bad input, before anything is written: a budget smaller than one episode, a target of
            another env than the source, a recording of another env, a folder holding something else.
    """
    console = console or Console()
    settings = settings or config.adapt or AdaptConfig()
    target = _target(config, settings)
    source = Path(source)
    limit = _check_inputs(config, settings, source, target, recording)
    folder = AdaptFolder(Path(out) if out is not None else AdaptFolder.default(config, target, seed))
    state = _open(folder, config, settings, source, target, seed, recording)
    loop = _Loop(config, settings, source, target, seed, folder, state, console, trust_source, command, limit)
    for stage in STAGES:
        if stage not in state["stages"]:
            started = time.perf_counter()
            result = getattr(loop, stage)()
            result["seconds"] = round(time.perf_counter() - started, 1)
            state["stages"][stage] = result
            write_json(folder.state, state)
    return loop.finish()


def adapt_finished(folder: Path, settings: AdaptConfig | None = None) -> bool:
    """Whether ``folder`` holds a loop that ran every stage (a study skips it; one that stopped resumes).

    Raises:
        Sim2RealError: the loop there was started with other ``settings`` (a changed study), which a study
            would otherwise take for its own.
    """
    import json

    try:
        state = json.loads(AdaptFolder(folder).state.read_text())
    except (OSError, ValueError, TypeError):
        return False
    if settings is not None and isinstance(state, dict) and not _same_settings(state.get("settings"), settings):
        raise Sim2RealError(
            f"{folder}: holds a loop started with other adapt settings; give the study another output folder or "
            "move this loop away"
        )
    return isinstance(state, dict) and "final" in state


def _same_settings(saved: Any, settings: AdaptConfig) -> bool:
    """Whether a loop's saved settings are ``settings``: a field the loop saved no value of (it did not exist
    yet) counts as its default, so an older loop still resumes where nothing it ran has changed."""
    now = settings.model_dump(mode="json", exclude={"target"})
    defaults = AdaptConfig().model_dump(mode="json", exclude={"target"})
    return (
        isinstance(saved, dict)
        and set(saved) <= set(now)
        and all(saved.get(key, defaults[key]) == value for key, value in now.items())
    )


def _target(config: Config, settings: AdaptConfig) -> str:
    if settings.target is not None:
        if settings.target not in config.targets:
            raise Sim2RealError(
                f"{config.origin}: adapt.target: no target '{settings.target}' (targets: "
                f"{', '.join(config.targets) or 'none'})"
            )
        return settings.target
    if len(config.targets) != 1:
        raise Sim2RealError(
            f"{config.origin}: adapt.target: name the target to adapt to ({', '.join(config.targets) or 'none defined'})"
        )
    return next(iter(config.targets))


def _time_limit(config: Config) -> int:
    limit = config.env_kwargs.get("max_episode_steps", gym.spec(config.env).max_episode_steps)
    if not isinstance(limit, int) or limit <= 0:
        raise Sim2RealError(f"{config.origin}: {config.env} has no time limit; adapt needs one to plan its budget")
    return limit


def _check_inputs(config: Config, settings: AdaptConfig, source: Path, target: str, recording: Path | None) -> int:
    """The env's time limit, once the inputs are known to be usable (nothing is written before)."""
    from sim2real.identification import read_trajectories

    if not source.exists():
        raise Sim2RealError(f"{source}: no such run folder or model zip")
    run = RunFolder(source if source.is_dir() else source.parent)
    if run.config_file.is_file():
        env = run.config().env
        if env != config.env:
            raise Sim2RealError(f"{source}: a source of {env}; the target '{target}' is of {config.env}")
    limit = _time_limit(config)
    if settings.budget < limit:
        raise Sim2RealError(
            f"{config.origin}: adapt.budget: {settings.budget:,} target steps is less than one recorded episode "
            f"({limit:,} steps at {config.env}'s time limit)"
        )
    if recording is not None:
        recorded = read_trajectories(recording).header.get("env")
        if recorded is not None and recorded != config.env:  # a robot's log may name no env
            raise Sim2RealError(f"{recording}: a recording of {recorded}; the target '{target}' is of {config.env}")
    return limit


def _open(
    folder: AdaptFolder, config: Config, settings: AdaptConfig, source: Path, target: str, seed: int,
    recording: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """A new loop's state, or the state of the loop ``folder`` holds when it was started the same way."""
    import json

    planned = {
        "env": config.env,
        "target": target,
        "source": os.path.relpath(source.resolve(), folder.path.resolve()),
        "seed": seed,
        "recording": None if recording is None else os.path.relpath(recording.resolve(), folder.path.resolve()),
        "settings": settings.model_dump(mode="json", exclude={"target"}),
        # What the fine-tuning starts from and the policy's input (a study's finetune settings, the source's
        # history): a loop saved before they were kept has none, and is taken as it is.
        "transfer": None if config.transfer is None else config.transfer.model_dump(mode="json", exclude_unset=True),
        "history": None if config.history is None else config.history.model_dump(mode="json"),
    }
    if folder.state.is_file():
        try:
            state = dict(json.loads(folder.state.read_text()))
        except ValueError as error:
            raise Sim2RealError(f"{folder.state}: not adapt's state ({error}); move it away to start again") from None
        changed = [key for key, value in planned.items() if key != "settings" and key in state and state[key] != value]
        changed += [] if _same_settings(state.get("settings"), settings) else ["settings"]
        if changed:
            raise Sim2RealError(
                f"{folder.path}: holds a loop started with another {changed[0]}; choose another out folder"
            )
        return state
    if folder.path.exists() and (not folder.path.is_dir() or any(folder.path.iterdir())):
        raise Sim2RealError(f"{folder.path}: exists and is not an adapt folder; choose another out folder")
    state = {**planned, "stages": {}}
    write_json(folder.state, state)
    return state


class _Loop:
    """The stages, each returning what ``adapt.json`` records of it (``target_steps`` it took, ``return``...)."""

    def __init__(
        self, config: Config, settings: AdaptConfig, source: Path, target: str, seed: int, folder: AdaptFolder,
        state: dict[str, Any], console: Console, trust_source: bool, command: str, limit: int,
    ) -> None:  # fmt: skip
        self.config, self.settings, self.source, self.target, self.seed = config, settings, source, target, seed
        self.folder, self.state, self.console = folder, state, console
        self.trust_source, self.command, self.limit = trust_source, command, limit

    def _spent(self) -> int:
        return sum(int(stage.get("target_steps", 0)) for stage in self.state["stages"].values())

    def _say(self, text: str) -> None:
        self.console.print(f"adapt: {text}", soft_wrap=True)

    # ------------------------------------------------------------------------------------------------ stages

    def record(self) -> dict[str, Any]:
        from sim2real.identification import read_trajectories, record

        given = self.state.get("recording")
        if given is not None:
            trajectories = read_trajectories(self.folder.path / given)
            returns = _episode_returns(trajectories) if trajectories.reward is not None else []
            self._say(f"the recording brought: {trajectories.episodes} episodes, {trajectories.steps:,} target steps")
        else:
            episodes = max(1, min(self.settings.record_episodes, self.settings.budget // self.limit))
            trajectories = record(self.config, model_path=self.source, domain=self.target, episodes=episodes,
                                  seed=self.seed, deterministic=True, trust_source=self.trust_source,
                                  min_steps=int(self.settings.record_share * self.settings.budget))  # fmt: skip
            returns = _episode_returns(trajectories)
            kept = trajectories.observations_only() if self.settings.record == "observations" else trajectories
            kept.write(self.folder.recording)
            self._say(f"recorded {trajectories.episodes} episodes of the source on {self.target}: return "
                      f"{np.mean(returns):,.1f}, {trajectories.steps:,} target steps")  # fmt: skip
        return {"target_steps": trajectories.steps, "episodes": trajectories.episodes,
                "mean_length": trajectories.steps / trajectories.episodes,
                "return": float(np.mean(returns)) if returns else None, "returns": returns}  # fmt: skip

    def _recording(self) -> Path:
        given = self.state.get("recording")
        return self.folder.path / given if given is not None else self.folder.recording

    def identify(self) -> dict[str, Any]:
        from sim2real.identification import identify, write_identification

        if not self.settings.params:
            return {"skipped": "no adapt.params to identify"}
        try:
            found = identify(self._recording(), self.config, self.settings.params, horizon=self.settings.horizon,
                             seed=self.seed, max_generations=self.settings.max_generations,
                             latency=self.settings.latency)  # fmt: skip
        except Sim2RealError as error:  # a loop goes on from the source: fine-tuning needs no estimate
            reason = str(error).replace(f"{self.folder.path}{os.sep}", "")  # adapt.json names no machine path
            self._say(f"identification failed, the loop goes on without it: {reason}")
            return {"failed": reason}
        write_identification(found, self.folder.identified, self.command)
        estimates = {e.param.name: e.value for e in found.fit.estimates}
        self._say("identified " + ", ".join(f"{name} {value:.4g}" for name, value in estimates.items())
                  + f", latency {found.latency} steps ({found.fit.seconds:.0f} s)")  # fmt: skip
        return {"estimates": estimates, "latency": found.latency, "loss": found.fit.loss}

    def simulate(self) -> dict[str, Any]:
        from sim2real.identification import IDENTIFIED, IDENTIFIED_RANDOMIZED

        if "estimates" not in self.state["stages"]["identify"] or not self.settings.simulation_steps:
            return {"skipped": "nothing identified" if self.settings.simulation_steps else "simulation_steps: 0"}
        name = IDENTIFIED_RANDOMIZED if self.settings.use == "randomized" else IDENTIFIED
        identified = load_config(self.folder.identified / name)
        data = identified.model_dump(mode="json")
        steps = self.settings.simulation_steps
        data.update(
            targets={"estimate": data["source"]},
            transfer={
                "method": "finetune",
                "target": "estimate",
                "budget": "training_steps",
                "eval_every": max(1, steps // 5),
                "eval_episodes": self.settings.eval_episodes,
            },
            adapt=None,
        )
        data["train"].update(total_timesteps=steps, seed=self.seed)
        data["run"]["folder"] = str(self.folder.simulation)
        run = _train(parse_config(data, str(self.folder.identified / name)), self.folder.simulation, self.source,
                     self.console, self.trust_source, self.command)  # fmt: skip
        self._say(f"trained {steps:,} simulation steps on the identified domain: {run}")
        return {"target_steps": 0, "simulation_steps": steps}

    def choose(self) -> dict[str, Any]:
        from sim2real.identification import record

        if self.state["stages"]["simulate"].get("simulation_steps") is None:
            return {"chosen": "source", "skipped": "no simulation-trained policy"}
        measured = self.state["stages"]["record"]["returns"]
        episodes = self.settings.eval_episodes
        mine = self.state.get("recording") is None and bool(measured)
        room = (self.settings.budget - self._spent()) // (self.limit * (1 if mine else 2))
        if room < 1:
            return {"chosen": "source", "skipped": "no target steps left to compare the two starts"}
        if not mine:  # the source's start states are not ours: it is measured on the same ones too
            episodes = min(episodes, room)
            before = record(self.config, model_path=self.source, domain=self.target, episodes=episodes,
                            seed=self.seed, deterministic=True, trust_source=self.trust_source)  # fmt: skip
            source_returns, steps = _episode_returns(before), before.steps
        else:
            episodes = min(episodes, len(measured), room)
            source_returns, steps = measured[:episodes], 0
        trajectories = record(self.config, model_path=self.folder.simulation, domain=self.target, episodes=episodes,
                              seed=self.seed, deterministic=True)  # fmt: skip
        simulated = float(np.mean(_episode_returns(trajectories)))
        source_return = float(np.mean(source_returns))
        chosen = "simulation" if simulated > source_return else "source"
        self._say(f"on the same {episodes} start states: simulation-trained {simulated:,.1f}, source "
                  f"{source_return:,.1f}; the {chosen} policy starts the fine-tuning")  # fmt: skip
        return {"target_steps": steps + trajectories.steps, "episodes": episodes,
                "return": max(simulated, source_return), "simulation_return": simulated,
                "source_return": source_return, "mean_length": trajectories.steps / episodes,
                "chosen": chosen}  # fmt: skip

    def finetune(self) -> dict[str, Any]:
        settings = self._finetuning()
        left = self.settings.budget - self._spent()
        stages = self.state["stages"]
        from_simulation = stages["choose"].get("chosen") == "simulation"
        # The run holds its own budget (its points take the episodes the budget has room for, see
        # EvalCurveCallback) where that is at least four episodes at the time limit; less trains nothing.
        rollout = int(getattr(self.config.algo, "n_steps", 1)) * self.config.train.n_envs
        needed = rollout + 4 * self.limit
        if left < needed:
            return {"skipped": f"{left:,} target steps left, less than one rollout and four episodes at the time "
                    f"limit ({needed:,})"}  # fmt: skip
        start = self.folder.simulation if from_simulation else self.source
        data = self.config.model_dump(mode="json")
        data.update(transfer=settings.model_dump(mode="json", exclude_unset=True), adapt=None)
        data["train"].update(total_timesteps=left, seed=self.seed)
        data["run"]["folder"] = str(self.folder.target)
        _train(parse_config(data, self.config.origin), self.folder.target, start, self.console, self.trust_source,
               self.command)  # fmt: skip
        points = RunFolder(self.folder.target).curve_points()
        last = points[-1]
        return {"target_steps": int(last["target_steps"]), "return": float(last.get("kept_reward", last["mean_reward"])),
                "start": "simulation" if from_simulation else "source"}  # fmt: skip

    def _finetuning(self) -> TransferConfig:
        """The fine-tuning's settings: the config's transfer section, on the target, with what it leaves unset
        chosen for a budget this small, where every evaluation of a policy that works takes episodes at the time
        limit (the IDP stand-in: 1,000 steps each, of 12,500): points at the start and the end only
        (``eval_every: 0``: a point due mid-run reserves room for two), of 2 episodes, confirmed by 1 (the
        defaults' 5 + 5 would take most of the budget at a policy that works). The recipe is the project's default (auto), which measures whether the start works
        on the target and remedies it where it does not: from the IDP stand-in's simulation-trained start
        (a return of 213 on the target), ``recipe: plain`` reached 499 with 8,196 training steps where auto
        from the nominal source reached 9,358 with as many."""
        given = self.config.transfer or TransferConfig()
        unset = {"eval_episodes": 2, "eval_every": 0}
        chosen: dict[str, Any] = {name: value for name, value in unset.items() if name not in given.model_fields_set}
        guard = given.guard
        if guard is not None and "confirm_episodes" not in guard.model_fields_set:
            chosen["guard"] = guard.model_copy(update={"confirm_episodes": 1}).model_dump(mode="json")
        chosen.update(method="finetune", target=self.target, budget="target_steps")
        return TransferConfig.model_validate({**given.model_dump(mode="json", exclude_unset=True), **chosen})

    # ------------------------------------------------------------------------------------------------ report

    def finish(self) -> AdaptResult:
        stages = self.state["stages"]
        curve = _curve(stages, RunFolder(self.folder.target).curve_points() if "return" in stages["finetune"] else [])
        write_json(self.folder.curve_file, {"domain": self.target, "points": curve})
        _tensorboard(self.folder, curve, stages)
        if "return" in stages["finetune"]:
            policy = self.folder.target
        else:
            policy = self.folder.simulation if stages["choose"].get("chosen") == "simulation" else self.source
        self._hand_over(policy)
        last: dict[str, Any] = curve[-1] if curve else {"target_steps": self._spent(), "mean_reward": None}
        simulation = int(stages["simulate"].get("simulation_steps") or 0)
        self.state["final"] = {"policy": os.path.relpath(policy.resolve(), self.folder.path.resolve()),
                               "return": last["mean_reward"], "target_steps": last["target_steps"],
                               "simulation_steps": simulation}  # fmt: skip
        write_json(self.folder.state, self.state)
        self._table(stages)
        measured = "no return measured" if last["mean_reward"] is None else f"return {last['mean_reward']:,.1f}"
        self._say(f"done: {measured} on {self.target} with {last['target_steps']:,} of {self.settings.budget:,} "
                  f"target steps and {simulation:,} simulation steps; the policy: {policy}")  # fmt: skip
        final = float("nan") if last["mean_reward"] is None else float(last["mean_reward"])
        return AdaptResult(self.folder.path, policy, final, int(last["target_steps"]), simulation, self.state)

    def _table(self, stages: dict[str, Any]) -> None:
        """Each stage's target steps, the return it measured and its wall time."""
        from rich.table import Table

        table = Table(title=f"sim2real adapt on {self.target}: {self.settings.budget:,} target steps")
        for column in ("stage", "target steps", "simulation steps", "return", "seconds", "note"):
            table.add_column(column)
        for name, stage in stages.items():
            value = stage.get("return")
            note = stage.get("skipped") or stage.get("failed") or (f"start: {stage['chosen']}" if "chosen" in stage
                                                                  else "")  # fmt: skip
            table.add_row(name, f"{int(stage.get('target_steps', 0)):,}", f"{int(stage.get('simulation_steps') or 0):,}",
                          "" if value is None else f"{value:,.1f}", f"{stage.get('seconds', 0.0):.0f}", note[:60])  # fmt: skip
        self.console.print(table)

    def _hand_over(self, policy: Path) -> None:
        """The loop's folder as a run folder of the policy it hands over: its model, statistics and evaluation,
        and a config whose transfer section says ``variant: adapt`` (under the source's experiment), so that
        evaluate, export, compare and the scorecard take the loop as they take any transfer run."""
        import shutil

        from sim2real.io import atomic_path, write_text

        mine, own = RunFolder(self.folder.path), RunFolder(policy if policy.is_dir() else policy.parent)
        # A model zip's statistics are beside it, as read_model finds them.
        files = [("model", "model"), ("vecnormalize_json", "vecnormalize_json"), ("vecnormalize", "vecnormalize")]
        if policy == self.folder.target:
            files.append(("eval_file", "eval_file"))
        else:  # the final evaluation every run has, on the loop's domains (a simulation run's are the estimate's)
            from sim2real.api import evaluate

            results = evaluate(policy, self.config, trust_source=self.trust_source)
            mine.write_eval(0, {result.domain: result.as_dict() for result in results})
        for theirs, ours in files:
            origin = policy if theirs == "model" and not policy.is_dir() else getattr(own, theirs)
            if origin.is_file():
                with atomic_path(getattr(mine, ours)) as tmp:
                    shutil.copyfile(origin, tmp)
        # The loop's own config (its env, targets and the policy's inputs), not the policy's run's: a simulation
        # run's targets are the estimate's.
        data = self.config.model_dump(mode="json")
        source = RunFolder(self.source if self.source.is_dir() else self.source.parent).saved_config()
        experiment = source.get("run", {}).get("experiment") if isinstance(source, dict) else None
        data["transfer"] = {**(data.get("transfer") or {}), "method": "finetune", "variant": "adapt",
                            "target": self.target, "source": None}  # fmt: skip
        data["run"] = {**data.get("run", {}), "folder": None, "experiment": experiment or "default"}
        data["train"] = {**data.get("train", {}), "seed": self.seed}
        data["adapt"] = None
        write_text(mine.config_file, dump_config(parse_config(data, str(mine.config_file))))


def _episode_returns(trajectories: Any) -> list[float]:
    episodes = np.asarray(trajectories.episode)
    rewards = np.asarray(trajectories.reward, dtype=np.float64)
    return [float(rewards[episodes == e].sum()) for e in np.unique(episodes)]


def _train(config: Config, folder: Path, source: Path, console: Console, trust_source: bool, command: str) -> Path:
    """A stage's run: trained into ``folder``, continued from its last checkpoint where a stopped loop left it,
    or left as it is once finished."""
    from sim2real.training import load_run_config, train

    run = RunFolder(folder)
    if run.finished():
        return folder
    if folder.is_dir() and run.checkpoints():
        return train(load_run_config(folder), resume=folder, console=console, command=command).run_dir
    if folder.exists():  # a run that stopped before its first checkpoint: nothing in it to reuse
        import shutil

        shutil.rmtree(folder)
    return train(config, source=source, console=console, trust_source=trust_source, command=command).run_dir


def _curve(stages: dict[str, Any], finetuned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The return the loop would hand over against the target steps taken so far, stage by stage."""
    points: list[dict[str, Any]] = []
    spent = 0
    record = stages["record"]
    spent += int(record.get("target_steps", 0))
    if record.get("return") is not None:
        points.append({"step": spent, "target_steps": spent, "mean_reward": record["return"], "stage": "record"})
    choose = stages["choose"]
    spent += int(choose.get("target_steps", 0))
    if "return" in choose:  # the chosen start's
        points.append({"step": spent, "target_steps": spent, "mean_reward": choose["return"], "stage": "choose"})
    for point in finetuned:
        steps = spent + int(point["target_steps"])
        points.append({"step": steps, "target_steps": steps,
                       "mean_reward": float(point.get("kept_reward", point["mean_reward"])), "stage": "finetune"})  # fmt: skip
    return points


def _tensorboard(folder: AdaptFolder, curve: list[dict[str, Any]], stages: dict[str, Any]) -> None:
    """``adapt/return`` against target steps (rewritten whole: a resumed loop shows each point once)."""
    import shutil

    from sim2real.logging import make_logger

    if folder.tensorboard.exists():
        shutil.rmtree(folder.tensorboard)
    logger = make_logger(folder.tensorboard)
    for point in curve:
        logger.record("adapt/return", point["mean_reward"])
        logger.dump(int(point["target_steps"]))
    for name, stage in stages.items():
        logger.record(f"adapt/target_steps/{name}", int(stage.get("target_steps", 0)))
        logger.record(f"adapt/seconds/{name}", float(stage.get("seconds", 0.0)))
    logger.record("adapt/simulation_steps", int(stages["simulate"].get("simulation_steps") or 0))
    logger.dump(int(curve[-1]["target_steps"]) if curve else 0)
    logger.close()
