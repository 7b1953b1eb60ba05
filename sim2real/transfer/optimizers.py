"""Optimizers with per-group learning-rate factors, saved in stable-baselines3's own layout.

A transfer run's per-layer rates and frozen groups live in the optimizer's parameter groups; this module keeps
them compatible with SB3's schedule and with a model zip that plain stable-baselines3 loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ScaledLearningRates:
    """Mixin for a torch optimizer: each step runs every parameter group at ``lr x lr_factor``.

    SB3's learning-rate schedule sets every group's ``lr`` to the same base rate before each update; the factor
    (the group's ``lr_scale`` times its warm-up, kept current by :meth:`~sim2real.transfer.Transfer.update_learning_rates`) is
    applied inside ``step`` only, so the schedule, the saved state and plain SB3 all see the base rate. Any SB3
    model of the right algorithm keeps per-layer rates this way, without a subclass of the algorithm.
    """

    param_groups: list[dict[str, Any]]
    defaults: dict[str, Any]
    # A loss added to the algorithm's before each step (the source anchor): its gradient joins theirs.
    extra_loss: Callable[[], torch.Tensor | None] | None = None
    # Every parameter of the network in the order SB3's own optimizer holds them, frozen ones too. The saved
    # state uses that layout (one group), so a model zip loads in plain stable-baselines3, and reads back here.
    layout: list[torch.nn.Parameter] | None = None

    def state_dict(self) -> dict[str, Any]:
        own: dict[str, Any] = super().state_dict()  # type: ignore[misc]
        if self.layout is None:
            return own
        position = {id(p): i for i, p in enumerate(self.layout)}
        packed = [p for group in self.param_groups for p in group["params"]]
        state = {position[id(p)]: own["state"][j] for j, p in enumerate(packed) if j in own["state"]}
        rate = self.param_groups[0]["lr"] if self.param_groups else self.defaults["lr"]
        return {
            "state": state,
            "param_groups": [{**self.defaults, "lr": rate, "params": list(range(len(self.layout)))}],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["param_groups"]
        if self.layout is None or len(saved) != 1 or len(saved[0]["params"]) != len(self.layout):
            super().load_state_dict(state_dict)  # type: ignore[misc]
            return
        # SB3's layout: each parameter's state goes to the group that holds it here (frozen ones hold none).
        position = {id(p): i for i, p in enumerate(self.layout)}
        packed = [p for group in self.param_groups for p in group["params"]]
        state = {j: state_dict["state"][position[id(p)]] for j, p in enumerate(packed)
                 if position[id(p)] in state_dict["state"]}  # fmt: skip
        groups, start = [], 0
        for group in self.param_groups:
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + len(group["params"])))})  # fmt: skip
            start += len(group["params"])
        super().load_state_dict({"state": state, "param_groups": groups})  # type: ignore[misc]

    def step(self, closure: Any = None) -> Any:
        if self.extra_loss is not None:
            with torch.enable_grad():
                loss = self.extra_loss()
                if loss is not None:
                    loss.backward()
        base = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            group["lr"] = group["lr"] * group.get("lr_factor", 1.0)
        try:
            return super().step(closure)  # type: ignore[misc]
        finally:
            for group, rate in zip(self.param_groups, base, strict=True):
                group["lr"] = rate


_SCALED: dict[type, type] = {}


def scaled(optimizer_class: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``optimizer_class`` (SB3's Adam, or the user's) with per-group learning-rate factors."""
    if issubclass(optimizer_class, ScaledLearningRates):
        return optimizer_class
    if optimizer_class not in _SCALED:
        _SCALED[optimizer_class] = type(f"Scaled{optimizer_class.__name__}", (ScaledLearningRates, optimizer_class), {})
    return _SCALED[optimizer_class]


def sb3_layout(policy: Any, network: str) -> list[torch.nn.Parameter]:
    """The parameters SB3's optimizer of ``network`` holds, in its order (``ActorCriticPolicy._build``,
    ``SACPolicy._build``: the critic leaves out a features extractor it shares with the actor)."""
    if network == "policy":
        return list(policy.parameters())
    module = getattr(policy, network)
    if network == "critic" and policy.share_features_extractor:
        return [p for name, p in module.named_parameters() if "features_extractor" not in name]
    return list(module.parameters())
