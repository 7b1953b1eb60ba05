"""Layer groups: a policy's parameters grouped by the layer they belong to, named after SB3's modules.

A group is one ``nn.Linear`` (its weight and bias), one LSTM (all its layers' weights) or one bare parameter (PPO's
``log_std``), named by its module
path in the policy, exactly as ``policy.named_parameters()`` spells it without ``.weight``/``.bias``::

    PPO   mlp_extractor.policy_net.0   mlp_extractor.value_net.2   action_net   value_net   log_std
    RecurrentPPO   lstm_actor   lstm_critic   (then PPO's groups)
    SAC   actor.latent_pi.0   actor.mu   actor.log_std   critic.qf0.2   critic.qf1.4   critic_target.qf0.0

Each group has a role: ``hidden`` (with its depth, 0 = the layer next to the input), ``head`` (an output layer),
``source`` (a progressive net's frozen source column) or ``target`` (SAC's target critic, never optimized).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

_PPO_HEADS = ("action_net", "value_net", "log_std")
# RecurrentPPO's LSTMs (sb3-contrib) sit between the observation and the MLP: hidden depth 0, the MLP's below.
_LSTMS = ("lstm_actor.", "lstm_critic.", "lstm.")
_SAC_HEADS = ("actor.mu", "actor.log_std")


@dataclass
class LayerGroup:
    name: str
    role: str  # hidden | head | source | target
    depth: int | None  # hidden layers only: 0 is the first
    params: dict[str, torch.Tensor] = field(default_factory=dict)  # full parameter name -> parameter

    @property
    def network(self) -> str:
        """Which optimizer the group belongs to: ``policy`` (PPO), ``actor``, ``critic`` or ``critic_target``."""
        head = self.name.split(".", 1)[0]
        return head if head in ("actor", "critic", "critic_target") else "policy"

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def shapes(self) -> str:
        return " + ".join("x".join(str(n) for n in p.shape) for p in self.params.values())


def group_name(param_name: str) -> str:
    if param_name.startswith(_LSTMS):  # lstm_actor.weight_ih_l0, ...: one group per LSTM
        return param_name.split(".", 1)[0]
    return param_name.rsplit(".", 1)[0] if param_name.endswith((".weight", ".bias")) else param_name


def _critic_heads(names: list[str]) -> set[str]:
    """The last child of each SAC Q-network is its output head (``critic.qf0.4``; ``critic.qf0.1`` in a prognet)."""
    last: dict[str, int] = {}
    for name in names:
        match = re.match(r"^(critic(?:_target)?\.qf\d+)\.(\d+)\.", name)
        if match:
            last[match.group(1)] = max(last.get(match.group(1), -1), int(match.group(2)))
    return {f"{q_net}.{index}" for q_net, index in last.items()}


def _depth(name: str) -> int:
    lateral = re.search(r"\.lateral\.(\d+)$", name)
    if lateral:
        return int(lateral.group(1)) + 1  # lateral i feeds the new column's layer i + 1
    index = re.search(r"\.(\d+)$", name)
    # Sequential trunks alternate Linear and activation: Linear j is hidden layer j // 2.
    return int(index.group(1)) // 2 if index else 0


def layer_groups(policy: nn.Module) -> list[LayerGroup]:
    """The policy's layer groups in parameter order (see the module docstring)."""
    return groups_of(list(policy.named_parameters()))


def groups_of(named: list[tuple[str, torch.Tensor]]) -> list[LayerGroup]:
    """Layer groups of named parameters (a module's, or a saved state dict's items)."""
    heads = set(_PPO_HEADS) | set(_SAC_HEADS) | _critic_heads([name for name, _ in named])
    recurrent = any(name.startswith(_LSTMS) for name, _ in named)
    groups: dict[str, LayerGroup] = {}
    for param_name, param in named:
        name = group_name(param_name)
        if name not in groups:
            if name.startswith("critic_target."):
                role, depth = "target", None
            elif ".source." in name:
                role, depth = "source", None
            elif name in heads or name.removeprefix("critic_target.") in heads:
                role, depth = "head", None
            elif param_name.startswith(_LSTMS):
                role, depth = "hidden", 0
            else:
                role, depth = "hidden", _depth(name) + int(recurrent)
            groups[name] = LayerGroup(name, role, depth)
        groups[name].params[param_name] = param
    return list(groups.values())


def hidden_layers(groups: list[LayerGroup]) -> int:
    """How many hidden layers the networks have (the deepest hidden group's depth + 1)."""
    depths = [g.depth for g in groups if g.role == "hidden" and g.depth is not None]
    return max(depths) + 1 if depths else 0


def selectable(groups: list[LayerGroup]) -> list[str]:
    """Names a user may freeze: every group that an optimizer trains."""
    return [g.name for g in groups if g.role in ("hidden", "head")]


def select(groups: list[LayerGroup], names: list[str], field_name: str) -> set[str]:
    """The groups that ``names`` pick, each an exact group name or a prefix ending at a dot."""
    from sim2real.errors import Sim2RealError

    valid = selectable(groups)
    chosen: set[str] = set()
    for name in names:
        hits = [g for g in valid if g == name or g.startswith(name + ".")]
        if not hits:
            raise Sim2RealError(f"{field_name}: no layer group '{name}' (valid: {', '.join(valid)})")
        chosen.update(hits)
    return chosen


def target_of(group: str) -> str | None:
    """The SAC target-critic group that mirrors a critic group (None for others)."""
    return "critic_target." + group.removeprefix("critic.") if group.startswith("critic.") else None


@torch.no_grad()
def drift(group: LayerGroup, reference: dict[str, torch.Tensor]) -> float | None:
    """L2 distance of a group's parameters from ``reference`` (the source's), or None without a reference."""
    if not all(name in reference for name in group.params):
        return None
    total = sum(float(torch.sum((p.detach().cpu() - reference[n]) ** 2)) for n, p in group.params.items())
    return total**0.5


def trunk(algo: str) -> str:
    return "actor.latent_pi" if algo == "sac" else "mlp_extractor.policy_net"


def is_actor(group: str) -> bool:
    """The actor (the critic warm-up holds it): PPO's trunk, action head and std; SAC's ``actor.*``."""
    return group.startswith(("mlp_extractor.policy_net", "actor.")) or group in ("action_net", "log_std")


def is_head_target(group: LayerGroup, groups: list[LayerGroup]) -> bool:
    mirror = "critic." + group.name.removeprefix("critic_target.")
    return any(g.name == mirror and g.role == "head" for g in groups)
