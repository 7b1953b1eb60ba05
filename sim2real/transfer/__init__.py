"""Transfer: a target model that reuses a source model's weights, with control over what learns and how fast.

Methods (``transfer.method``):

- ``scratch``: fresh weights, the baseline every comparison needs.
- ``finetune``: every source weight, every weight trainable.
- ``freeze``: source weights, the first k hidden layers (or named groups) frozen.
- ``progressive``: gradual unfreezing: the heads train first, then one hidden layer every N steps from the
  top down, each layer at ``lr_decay`` times the rate of the layer above it.
- ``prognet``: a progressive neural network (see :mod:`sim2real.transfer.prognet`).

Frozen parameters have ``requires_grad`` off and are in no optimizer (no Adam moments, no weight decay), so
they stay bit-identical. Per-layer learning rates live in the optimizer's parameter groups (``lr_scale``, and a
warm-up factor): the optimizer applies them inside its ``step``, after SB3's schedule has set every group to
the base rate, so they hold on any SB3 model of the right algorithm (plain ``PPO``/``SAC``, no subclass).

A run sets its transfer up once: :func:`read_source` reads and checks the source, :func:`start_transfer` loads
it into the new model (weights, frozen groups, optimizers, normalization statistics, ``source.pth``,
``transfer.json``); :func:`resume_transfer` rebuilds that state from a checkpoint. The schedule runs in
:class:`~sim2real.transfer.callbacks.TransferCallback`.

Beside this module: ``groups`` (layer groups), ``source`` (reading and checking the source), ``optimizers``
(per-group learning rates in SB3's layout), ``anchor`` (the KL anchor), ``history`` (a source widened for an
observation history), ``recipe`` (the fine-tuning remedies and their check), ``guard`` (the negative-transfer
guard), ``prognet`` (progressive networks) and ``inspect``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.running_mean_std import RunningMeanStd

from sim2real.config import HistoryConfig, TransferConfig
from sim2real.errors import Sim2RealError
from sim2real.io import atomic_path, write_json
from sim2real.modelfile import ModelFile, apply_normalization_state, observation_size, read_model, restore_model
from sim2real.runs import Checkpoint, RunFolder
from sim2real.transfer.anchor import Anchor
from sim2real.transfer.groups import (
    LayerGroup,
    drift,
    hidden_layers,
    is_actor,
    is_head_target,
    layer_groups,
    select,
    target_of,
    trunk,
)
from sim2real.transfer.guard import GuardState, Snapshot, read_best
from sim2real.transfer.history import history_inputs, widen_inputs, widen_statistics
from sim2real.transfer.optimizers import sb3_layout, scaled
from sim2real.transfer.prognet import is_progressive, make_progressive, source_arch_of, source_column_weights
from sim2real.transfer.recipe import CHECK_EPISODES, RecipeCheck, compensate, recalibrate, reset_exploration
from sim2real.transfer.source import read_source, space_mismatch

if TYPE_CHECKING:
    from sim2real.evaluation import DomainResult

__all__ = ["CHECK_EPISODES", "RecipeCheck", "Transfer", "read_source", "resume_transfer", "start_transfer"]


def _net_arch(model: BaseAlgorithm) -> list[int]:
    arch = model.policy_kwargs.get("net_arch", [64, 64])
    return list(arch if isinstance(arch, list) else arch["pi"])


@dataclass
class Transfer:
    """The transfer state of one target model: its groups, which are frozen, their learning rates, the source.

    Build it with :meth:`start` (a new run, from a source) or :meth:`restore` (a resumed run, from its own
    checkpoint); :meth:`advance_to` unfreezes what the schedule says is due.
    """

    model: BaseAlgorithm
    settings: TransferConfig
    algo: str
    groups: list[LayerGroup] = field(default_factory=list)
    frozen: set[str] = field(default_factory=set)
    new: set[str] = field(default_factory=set)  # trained groups not taken from the source
    loaded: set[str] = field(default_factory=set)  # groups holding the source's weights
    levels: dict[str, int] = field(default_factory=dict)  # 0: heads, 1: the last hidden layer, ...
    unfrozen_at: dict[str, int] = field(default_factory=dict)
    reference: dict[str, torch.Tensor] = field(default_factory=dict)  # source weights under target names
    pinned: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    recalibration_steps: int = 0  # target steps the source policy ran to recalibrate normalization (and check)
    recipe_check: RecipeCheck | None = None  # recipe auto: did the recalibrated source score more?
    # The curve's step-0 evaluation when auto's check was that (a source that works); not saved: a resumed run
    # has its curve's points.
    first_evaluation: DomainResult | None = None
    held: set[str] = field(default_factory=set)  # actor groups frozen by the critic warm-up
    anchor: Anchor | None = None
    warmup_ended: int | None = None  # the step the critic warm-up ended at
    guard: GuardState = field(default_factory=GuardState)  # the negative-transfer guard's (see guard.py)
    best: Snapshot | None = None  # a resumed run's best policy, read from best/ when the run is restored
    caution: float = 1.0  # the learning-rate factor the guard's rollbacks have set

    # ----------------------------------------------------------------------------------- building

    @classmethod
    def start(
        cls, model: BaseAlgorithm, settings: TransferConfig, algo: str, source: ModelFile | None,
        history: HistoryConfig | None = None,
    ) -> Transfer:  # fmt: skip
        """Sets up a new target model: structure, source weights, frozen groups, optimizers. ``history``: the
        target's (see :func:`history_inputs`)."""
        transfer = cls(model, settings, algo)
        if settings.method == "scratch" or source is None:
            transfer._finish(step=0, loaded=set())
            return transfer
        if source.algo != algo:
            raise Sim2RealError(
                f"source {source.path} is a {source.algo.upper()} model but the config trains {algo.upper()} "
                f"(set algo.name: {source.algo})"
            )
        widened = None
        if settings.method == "prognet":
            make_progressive(model.policy, algo, source_arch_of(source.policy, trunk(algo)), _net_arch(model))
            weights = source_column_weights(source.policy, algo, _net_arch(model))
        else:
            weights = dict(source.policy)
            widened = history_inputs(source, model, history)
            if widened is not None:
                weights = widen_inputs(weights, model.policy.state_dict(), *widened)
        transfer.groups = layer_groups(model.policy)
        fresh = {name: value.detach().clone() for name, value in model.policy.state_dict().items()}
        loaded = transfer._load(weights, source)
        if (
            settings.method != "prognet"
            and "log_ent_coef" in source.variables
            and getattr(model, "log_ent_coef", None) is not None
        ):
            # SAC's temperature belongs with the policy it was tuned for.
            cast(Any, model).log_ent_coef.data.copy_(source.variables["log_ent_coef"].data)
        transfer._finish(step=0, loaded=loaded)
        if widened is not None and settings.method == "freeze":
            frozen = sorted(g.name for g in transfer.groups if g.name in transfer.frozen and g.depth == 0)
            if frozen:
                raise Sim2RealError(
                    f"transfer.freeze: {', '.join(frozen)} takes the history the memoryless source never saw; "
                    "frozen, its weights on the past would stay zero: freeze deeper layers (freeze.groups) or use "
                    "finetune or progressive"
                )
        if settings.shrink_perturb is not None:
            transfer._shrink_perturb(fresh, settings.shrink_perturb)
        if settings.optimizer_state == "source":
            transfer._carry_optimizer_state(source)
        return transfer

    @torch.no_grad()
    def _shrink_perturb(self, fresh: dict[str, torch.Tensor], keep: float) -> None:
        """Each reused weight that will train becomes ``keep x source + (1 - keep) x fresh init`` (the init the
        target model drew), and SAC's target critic follows its critic; frozen layers and a progressive net's
        source column keep the source's weights exactly."""
        blended = {g.name for g in self.groups if g.name in self.loaded and g.name not in self.frozen
                   and g.role in ("hidden", "head")}  # fmt: skip
        blended |= {target for name in blended if (target := target_of(name)) is not None}
        for group in self.groups:
            if group.name in blended:
                for name, param in group.params.items():
                    param.mul_(keep).add_(fresh[name].to(param.device), alpha=1 - keep)
        self._pin_targets()

    @classmethod
    def restore(
        cls,
        model: BaseAlgorithm,
        settings: TransferConfig,
        algo: str,
        checkpoint: ModelFile,
        state: dict[str, Any],
        reference: dict[str, torch.Tensor],
    ) -> Transfer:
        """Rebuilds a transfer run's model from its own checkpoint: the structure and frozen groups as they
        were at that step, then the weights and optimizer state.

        Args:
            checkpoint: the checkpoint's model, read weights-only.
            state: the run's ``transfer.json`` (which groups came from the source).
            reference: the source weights the run started from (``source.pth``), for the drift curves.
        """
        transfer = cls(model, settings, algo)
        if is_progressive(checkpoint.policy):
            make_progressive(model.policy, algo, source_arch_of(checkpoint.policy, trunk(algo)), _net_arch(model))
        transfer.groups = layer_groups(model.policy)
        transfer.reference = reference
        transfer._finish(step=0, loaded=set(state.get("loaded", [])), new=set(state.get("new", [])))
        transfer.warmup_ended = state.get("warmup_ended")
        check = state.get("recipe_check")
        if check is not None:  # what the run decided at its start stays in transfer.json and TensorBoard
            transfer.recipe_check = RecipeCheck.of(check)
        transfer.guard = GuardState.of(state.get("guard"))
        transfer.advance_to(checkpoint.num_timesteps)
        restore_model(model, checkpoint)
        transfer._pin_targets()
        return transfer

    def _load(self, weights: dict[str, torch.Tensor], source: ModelFile) -> set[str]:
        """Copies source weights into the target; returns the groups loaded. Shapes that differ are an error
        naming both spaces, unless ``adapter`` is on: then those groups stay new (input/output adapters)."""
        target_state = self.model.policy.state_dict()
        skip_heads = self.settings.reinit_heads and self.settings.method != "prognet"
        warmup = self.settings.critic_warmup
        fresh_value = warmup is not None and warmup.fresh_value_head and self.settings.method != "prognet"
        loaded: set[str] = set()
        mismatched: list[str] = []
        for group in self.groups:
            if skip_heads and group.role == "head":
                continue
            if fresh_value and group.name == "value_net":
                continue
            if skip_heads and group.role == "target" and is_head_target(group, self.groups):
                continue
            names = list(group.params)
            if not all(name in weights for name in names):
                continue
            if any(weights[n].shape != target_state[n].shape for n in names):
                mismatched.append(group.name)
                continue
            loaded.add(group.name)
        if mismatched and not self.settings.adapter:
            raise Sim2RealError(space_mismatch(source, self.model, mismatched))
        frozen_misfits = [name for name in mismatched if ".source." in name]
        if frozen_misfits:
            # A progressive net's source column is frozen: a layer that cannot take the source's weights would
            # stay random for good, so an adapter cannot help here.
            raise Sim2RealError(
                space_mismatch(source, self.model, frozen_misfits).split("; set transfer.adapter")[0]
                + "; prognet keeps the source column as it is, so it needs the source's spaces (use finetune with adapter)"
            )
        with torch.no_grad():
            for group in self.groups:
                if group.name in loaded:
                    for name, param in group.params.items():
                        param.copy_(weights[name].to(param.device))
                        self.reference[name] = weights[name].detach().cpu().clone()
        return loaded

    def _finish(self, step: int, loaded: set[str], new: set[str] | None = None) -> None:
        """Decides the levels and the frozen groups, then builds the optimizers."""
        if not self.groups:
            self.groups = layer_groups(self.model.policy)
        depth = hidden_layers(self.groups)
        self.loaded = set(loaded)
        self.new = new if new is not None else {g.name for g in self.groups if g.role in ("hidden", "head")} - loaded
        for group in self.groups:
            if group.role == "head":
                self.levels[group.name] = 0
            elif group.role == "hidden" and group.depth is not None:
                self.levels[group.name] = depth - group.depth
        method = self.settings.method
        trainable = [g for g in self.groups if g.role in ("hidden", "head")]
        if method == "freeze":
            chosen = self.settings.freeze
            if chosen.groups is not None:
                frozen = select(self.groups, chosen.groups, "transfer.freeze.groups")
            else:
                layers = 1 if chosen.layers is None else chosen.layers
                if layers > depth:
                    raise Sim2RealError(
                        f"transfer.freeze.layers: {layers} is beyond the network's {depth} hidden layer"
                        f"{'s' if depth != 1 else ''} (allowed: 0 to {depth})"
                    )
                frozen = {g.name for g in trainable if g.role == "hidden" and g.depth is not None and g.depth < layers}
            self.frozen = frozen - self.new
        elif method == "progressive":
            self.frozen = {g.name for g in trainable if self.levels.get(g.name, 0) > 0} - self.new
        else:
            self.frozen = set()
        self.frozen |= {g.name for g in self.groups if g.role == "source"}
        if self.settings.critic_warmup is not None and self.settings.method != "scratch":
            permanent = self.frozen if method == "freeze" else set()
            self.held = {g.name for g in trainable if is_actor(g.name)} - permanent
            self.frozen |= self.held
            if self.algo == "sac":
                # The source policy acts from the first step, so its transitions, not uniform random actions,
                # fill the replay buffer the critic warms up on.
                cast(Any, self.model).policy_acts_at_start = True
        for network in {g.network for g in trainable}:
            if all(g.name in self.frozen - self.held for g in trainable if g.network == network):
                raise Sim2RealError(f"transfer.freeze: every layer of the {network} would be frozen; nothing to train")
        for group in self.groups:
            if group.name not in self.frozen and group.role in ("hidden", "head"):
                self.unfrozen_at.setdefault(group.name, step)
            for param in group.params.values():
                param.requires_grad_(group.name not in self.frozen and group.role != "target")
        self._build_optimizers()
        self._pin_targets()

    def _lr_scale(self, group: LayerGroup) -> float:
        return float(self.settings.lr_decay ** self.levels.get(group.name, 0))

    def _param_group(self, group: LayerGroup) -> dict[str, Any]:
        return {
            "params": list(group.params.values()),
            "name": group.name,
            "lr_scale": self._lr_scale(group),
            "unfrozen_at": self.unfrozen_at.get(group.name, 0),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizer of each network: PPO's ``policy``, SAC's ``actor`` and ``critic``."""
        policy: Any = self.model.policy
        if self.algo in ("ppo", "recurrent_ppo"):
            return {"policy": policy.optimizer}
        return {"actor": policy.actor.optimizer, "critic": policy.critic.optimizer}

    def _build_optimizers(self) -> None:
        policy: Any = self.model.policy
        base = float(self.model.lr_schedule(1.0))
        for network, old in self.optimizers().items():
            # Groups the critic warm-up holds are in their optimizer from the start, with no gradient until
            # released (Adam skips them): SAC's actor optimizer holds nothing else, and a resumed run builds the
            # same groups in the same order whenever the warm-up ended.
            groups = [
                self._param_group(g)
                for g in self.groups
                if g.network == network
                and g.role in ("hidden", "head")
                and (g.name not in self.frozen or g.name in self.held)
            ]
            optimizer = cast(Any, scaled(type(old)))(groups, lr=base, **policy.optimizer_kwargs)
            owner = policy if network == "policy" else getattr(policy, network)
            optimizer.layout = sb3_layout(policy, network)
            owner.optimizer = optimizer

    def _pin_targets(self) -> None:
        """SAC: the target-critic layers mirroring frozen critic layers (and the source column) stay fixed."""
        self.pinned = []
        keep = {target_of(name) for name in self.frozen}
        for group in self.groups:
            if group.role == "target" and (group.name in keep or ".source." in group.name):
                self.pinned += [(p, p.detach().clone()) for p in group.params.values()]

    @torch.no_grad()
    def restore_pinned(self) -> None:
        for param, value in self.pinned:
            param.copy_(value)

    def _carry_optimizer_state(self, source: ModelFile) -> None:
        """Gives each trainable parameter the source optimizer's state (Adam moments, step) for that parameter.

        SB3 builds its optimizers over parameters in ``named_parameters()`` order (SAC's critic skips its
        features extractor), so the source's parameter index i is its i-th such name.
        """
        policy_names = list(source.policy)
        for network, optimizer in self.optimizers().items():
            saved = source.params.get(f"{network}.optimizer" if network != "policy" else "policy.optimizer")
            if saved is None:
                continue
            prefix = "" if network == "policy" else network + "."
            names = [n for n in policy_names if n.startswith(prefix) and "features_extractor" not in n]
            index_of = {name: i for i, name in enumerate(names)}
            name_of = {id(p): n for g in self.groups for n, p in g.params.items()}
            # Handed over in SB3's layout, which the optimizer reads into its own groups (frozen: none).
            layout = cast(Any, optimizer).layout
            state = {}
            for position, param in enumerate(layout):
                source_index = index_of.get(name_of.get(id(param), ""))
                if source_index is not None and source_index in saved["state"]:
                    state[position] = saved["state"][source_index]
            groups = [{**optimizer.defaults, "params": list(range(len(layout)))}]
            optimizer.load_state_dict({"state": state, "param_groups": groups})

    # ----------------------------------------------------------------------------------- schedule

    def _release_step(self, group: str) -> int:
        """When a frozen group's schedule lets it train: its progressive level's time, and for a group the
        critic warm-up holds, not before the warm-up ended."""
        step = 0
        if self.settings.method == "progressive":
            step = self.levels.get(group, 0) * self.settings.progressive.unfreeze_every
        if group in self.held:
            step = max(step, self.warmup_ended if self.warmup_ended is not None else 2**62)
        return step

    def due(self, step: int) -> list[str]:
        """Frozen groups whose unfreezing time has come (progressive: level k at k x unfreeze_every; the actor
        after the critic warm-up); ``freeze``'s frozen groups never are."""
        releasable = self.settings.method == "progressive"
        return [
            g.name
            for g in self.groups
            if g.name in self.frozen
            and g.role in ("hidden", "head")
            and (releasable or g.name in self.held)
            and self._release_step(g.name) <= step
        ]

    def end_warmup(self, step: int, explained_variance: float | None = None) -> bool:
        """Ends the critic warm-up at ``step`` when its steps are done or the value function explains enough."""
        warmup = self.settings.critic_warmup
        if warmup is None or not self.held or self.warmup_ended is not None:
            return False
        level = warmup.explained_variance
        if step > warmup.steps or (
            level is not None and explained_variance is not None and explained_variance >= level
        ):
            self.warmup_ended = step
            return True
        return False

    def advance_to(self, step: int) -> list[str]:
        """Unfreezes the groups due at ``step``: trainable again and added to their optimizer."""
        names = self.due(step)
        if not names:
            return []
        optimizers = self.optimizers()
        # In the order the schedule released them, so a resumed run that unfreezes several at once builds the
        # same optimizer groups, in the same order, as the run it continues (its saved state must fit them).
        order = sorted((g for g in self.groups if g.name in names),
                       key=lambda g: (self._release_step(g.name), self.levels.get(g.name, 0)))  # fmt: skip
        for group in order:
            self.frozen.discard(group.name)
            self.unfrozen_at[group.name] = self._release_step(group.name)
            for param in group.params.values():
                param.requires_grad_(True)
            if group.name not in self.held:  # a held group is in its optimizer already
                optimizers[group.network].add_param_group(self._param_group(group))
        self._pin_targets()
        return names

    # ----------------------------------------------------------------------------------- learning rates

    def update_learning_rates(self, logger: Logger | None = None) -> None:
        """Sets each parameter group's learning-rate factor for the next update (its ``lr_scale``, times its
        warm-up when progressive), and logs the resulting rates as ``transfer/lr/<group>``."""
        warmup = self.settings.progressive.warmup_steps if self.settings.method == "progressive" else 0
        step = self.model.num_timesteps
        base = float(self.model.lr_schedule(self.model._current_progress_remaining))
        rates: dict[str, float] = {}
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                if "lr_scale" not in group:
                    continue
                factor = group["lr_scale"] * self.caution
                if warmup:
                    factor *= min(1.0, max(0, step - group["unfrozen_at"]) / warmup)
                group["lr_factor"] = factor
                rates[group["name"]] = base * factor
        if logger is not None:
            for g in self.groups:
                if g.role in ("hidden", "head"):
                    logger.record(f"transfer/lr/{g.name}", rates.get(g.name, 0.0))

    # ----------------------------------------------------------------------------------- reporting

    def trainable_params(self) -> int:
        return sum(g.numel for g in self.groups if g.role in ("hidden", "head") and g.name not in self.frozen)

    def record(self, logger: Logger) -> None:
        """``transfer/trainable_params``, ``transfer/frozen/<group>`` (1 frozen, 0 training) and
        ``transfer/weight_drift/<group>`` (L2 distance from the source's weights)."""
        logger.record("transfer/trainable_params", self.trainable_params())
        log_std = getattr(self.model.policy, "log_std", None)
        if isinstance(log_std, torch.nn.Parameter):  # PPO's state-independent std: has exploration collapsed?
            logger.record("transfer/action_std", float(log_std.detach().exp().mean()))
        if self.recalibration_steps:
            logger.record("transfer/recalibration_steps", self.recalibration_steps)
        if self.recipe_check is not None:
            self.recipe_check.record(logger)
        if self.anchor is not None:
            self.anchor.record(logger)
        if self.settings.critic_warmup is not None:
            logger.record("transfer/critic_warmup", float(bool(self.held) and self.warmup_ended is None))
        for group in self.groups:
            if group.role in ("hidden", "head"):
                logger.record(f"transfer/frozen/{group.name}", float(group.name in self.frozen))
            if group.role != "target":
                distance = drift(group, self.reference)
                if distance is not None:
                    logger.record(f"transfer/weight_drift/{group.name}", distance)

    def state(self) -> dict[str, Any]:
        """What ``transfer.json`` holds: each group's state now, for ``sim2real inspect`` and resume."""
        return {
            "method": self.settings.method,
            "step": int(self.model.num_timesteps),
            "loaded": sorted(self.loaded),
            "new": sorted(self.new),
            "warmup_ended": self.warmup_ended,
            "recipe_check": None if self.recipe_check is None else self.recipe_check.as_dict(),
            "guard": self.guard.as_dict(),
            "groups": {
                g.name: {
                    "role": g.role,
                    "state": "frozen" if g.name in self.frozen else ("target" if g.role == "target" else "trainable"),
                    "lr_scale": self._lr_scale(g) if g.role in ("hidden", "head") else None,
                }
                for g in self.groups
            },
        }


# --------------------------------------------------------------------------------------------- setup


def start_transfer(
    model: BaseAlgorithm, settings: TransferConfig, source: ModelFile | None, run: RunFolder,
    history: HistoryConfig | None = None, first: Callable[[], DomainResult] | None = None,
    budget: int | None = None,
) -> Transfer:  # fmt: skip
    """Sets up a new transfer run's model once: the source's weights, frozen groups and optimizers, the source's
    normalization statistics, and the run's ``source.pth`` and ``transfer.json``. ``history``: the target
    config's (a source without it is widened, see :func:`history_inputs`). ``first``: the learning curve's
    evaluation, when it measures the mean action, and ``budget``: the run's target steps (see
    :func:`recalibrate`)."""
    transfer = Transfer.start(model, settings, _algo_of(model), source, history)
    anchor_reference: dict[str, torch.Tensor] | None = None
    normalization = model.get_vec_normalize_env()
    if source is not None and source.normalization is not None and normalization is not None:
        size = int(np.prod(model.observation_space.shape or (1,)))
        state = source.normalization
        if history is not None and settings.method != "prognet" and history_inputs(source, model, history):
            state = widen_statistics(state, history, int(np.prod(model.action_space.shape or (1,))))
        if observation_size(state) == size:
            apply_normalization_state(normalization, state)
    if normalization is not None:
        if settings.normalization == "recalibrate" and source is not None:
            rms: Any = normalization.obs_rms
            before = (np.array(rms.mean), np.array(rms.var))
            settings = transfer.settings = recalibrate(
                transfer, normalization, settings, source.home_return, first, budget
            )
            rms = normalization.obs_rms
            after = (np.array(rms.mean), np.array(rms.var))
            recalibrated = settings.normalization == "recalibrate"  # else auto fell back: the carried are back
            if recalibrated and settings.compensate:
                compensate(model.policy, [transfer.reference], before, after, normalization.epsilon)
            elif recalibrated and settings.anchor is not None:
                # The anchor holds the policy near what the source did, which on the new statistics is the
                # source's weights rewritten for them (without it, the anchor pulled towards the perturbed source:
                # 0.07 of scratch from the randomized Hopper source). The trained policy stays uncompensated.
                anchor_reference = {name: value.clone() for name, value in transfer.reference.items()}
                compensate(model.policy, [anchor_reference], before, after, normalization.epsilon, policy_too=False)
                with atomic_path(run.anchor_weights) as tmp:
                    torch.save(anchor_reference, tmp)
        if settings.reset_returns:
            normalization.ret_rms = RunningMeanStd(shape=())
            normalization.returns = np.zeros(normalization.num_envs)
        normalization.training = settings.normalization != "fixed"
    reset_exploration(model, settings)
    _attach_anchor(transfer, anchor_reference)
    with atomic_path(run.source_weights) as tmp:
        torch.save(transfer.reference, tmp)
    write_json(run.transfer_state, transfer.state())
    return transfer


def resume_transfer(model: BaseAlgorithm, settings: TransferConfig, run: RunFolder, checkpoint: Checkpoint) -> Transfer:
    """A transfer run's state at ``checkpoint``, on ``model`` freshly built from the run's config (weights-only)."""
    state = json.loads(checkpoint.transfer_state.read_text())
    reference = torch.load(run.source_weights, weights_only=True) if run.source_weights.is_file() else {}
    saved = read_model(checkpoint.model, with_normalization=False)  # weights-only; statistics: the caller
    transfer = Transfer.restore(model, settings, _algo_of(model), saved, state, reference)
    if settings.guard is not None and transfer.guard.best is not None:
        # Read (and checked) before the run writes anything: a broken best/ stops the resume here.
        transfer.best, transfer.guard.best = read_best(run.best)
    anchored = torch.load(run.anchor_weights, weights_only=True) if run.anchor_weights.is_file() else None
    _attach_anchor(transfer, anchored)
    return transfer


def _attach_anchor(transfer: Transfer, reference: dict[str, torch.Tensor] | None = None) -> None:
    """The source anchor, on the policy's optimizer (rebuilt the same way on resume, from ``anchor.pth`` or else
    ``source.pth``); ``reference``: the anchor's weights when they are not the run's reference."""
    settings = transfer.settings.anchor
    if settings is None or not transfer.reference:
        return
    transfer.anchor = Anchor(transfer.model, reference or transfer.reference, settings.weight, settings.decay)
    for optimizer in transfer.optimizers().values():
        cast(Any, optimizer).extra_loss = transfer.anchor.loss


def _algo_of(model: BaseAlgorithm) -> str:
    if isinstance(model, SAC):
        return "sac"
    return "recurrent_ppo" if hasattr(model.policy, "lstm_actor") else "ppo"
