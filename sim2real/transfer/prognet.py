"""Progressive neural networks (Rusu et al., 2016, "Progressive Neural Networks") on SB3 policies.

Each trunk of the policy (PPO's ``policy_net``/``value_net``, SAC's ``latent_pi`` and Q-networks) becomes a
:class:`ProgressiveColumn`: the source's trunk kept frozen (``.source``), a new trunk for the target
(``.column``), and lateral connections (``.lateral``) from each source hidden layer into the next new layer.
The column's output is both columns' last hidden layers side by side, so the output heads see the new
features and the source's: a head initialized as ``[0 | source head]`` makes the whole network compute exactly
the source policy at the start (the target run's jumpstart is the source's zero-shot return), and training
moves it from there.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, cast

import torch
from torch import nn

from sim2real.errors import Sim2RealError


def _mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), activation()]
    return nn.Sequential(*layers)


class ProgressiveColumn(nn.Module):
    """A new trunk beside a frozen source trunk, with lateral connections from source layer i to new layer i+1.

    Args:
        in_features: input size (observation features; for a Q-network, features and action).
        source_arch: the source trunk's hidden sizes.
        new_arch: the new trunk's hidden sizes.
        activation: the activation both trunks use.
    """

    def __init__(self, in_features: int, source_arch: list[int], new_arch: list[int], activation: type[nn.Module]):
        super().__init__()
        if not source_arch or not new_arch:
            raise Sim2RealError("prognet needs at least one hidden layer in the source and in the new column")
        self.source = _mlp([in_features, *source_arch], activation)
        self.column = _mlp([in_features, *new_arch], activation)
        self.lateral = nn.ModuleList(
            nn.Linear(source_arch[i - 1], new_arch[i], bias=False)
            for i in range(1, len(new_arch))
            if i - 1 < len(source_arch)
        )
        self.activation = activation()
        self.out_features = new_arch[-1] + source_arch[-1]
        for parameter in self.source.parameters():
            parameter.requires_grad_(False)
        for lateral in self.lateral:
            assert isinstance(lateral, nn.Linear)
            # Small laterals: the new column starts close to an independent network and learns what to borrow.
            nn.init.orthogonal_(lateral.weight, gain=0.1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        source_hidden = []
        h = features
        for layer in self.source:
            h = layer(h)
            if not isinstance(layer, nn.Linear):
                source_hidden.append(h)
        n = features
        linears = [m for m in self.column if isinstance(m, nn.Linear)]
        for i, linear in enumerate(linears):
            pre = linear(n)
            if i >= 1 and i - 1 < len(self.lateral):
                pre = pre + self.lateral[i - 1](source_hidden[i - 1])
            n = self.activation(pre)
        return torch.cat([n, source_hidden[-1]], dim=-1)


def _head(source_head: nn.Linear | None, new_width: int, source_width: int, out: int) -> nn.Linear:
    """A head over ``[new | source]`` features, ``[0 | source head]`` when the source head fits."""
    head = nn.Linear(new_width + source_width, out)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        if source_head is not None:
            head.weight[:, new_width:] = source_head.weight
            head.bias.copy_(source_head.bias)
    return head


def source_arch_of(policy_state: dict[str, torch.Tensor], trunk: str) -> list[int]:
    """Hidden sizes of a plain trunk (``mlp_extractor.policy_net``) or a progressive one's source column."""
    pattern = re.compile(rf"^{re.escape(trunk)}(?:\.source)?\.(\d+)\.weight$")
    layers = sorted(
        (int(m.group(1)), tensor.shape[0]) for key, tensor in policy_state.items() if (m := pattern.match(key))
    )
    return [size for _, size in layers]


def is_progressive(policy_state: dict[str, torch.Tensor]) -> bool:
    return any(".source." in key for key in policy_state)


def make_progressive(policy: Any, algo: str, source_arch: list[int], new_arch: list[int]) -> None:
    """Turns a freshly built SB3 policy into a progressive net, in place (before its optimizers are made).

    The heads start as ``[0 | fresh head]``; :func:`load_source_column` then fills in the source's weights.
    """
    if not source_arch or not new_arch:
        which = "the source" if not source_arch else "algo.net_arch"
        raise Sim2RealError(f"prognet needs at least one hidden layer in {which} (it connects hidden layers)")
    activation = _activation_of(policy)
    if algo == "ppo":
        extractor = policy.mlp_extractor
        in_features = extractor.policy_net[0].in_features
        for trunk in ("policy_net", "value_net"):
            setattr(extractor, trunk, ProgressiveColumn(in_features, source_arch, new_arch, activation))
        width = extractor.policy_net.out_features
        extractor.latent_dim_pi = extractor.latent_dim_vf = width
        policy.action_net = _head(None, new_arch[-1], source_arch[-1], policy.action_net.out_features)
        policy.value_net = _head(None, new_arch[-1], source_arch[-1], 1)
        return
    actor = policy.actor
    in_features = actor.latent_pi[0].in_features
    actor.latent_pi = ProgressiveColumn(in_features, source_arch, new_arch, activation)
    actor.mu = _head(None, new_arch[-1], source_arch[-1], actor.mu.out_features)
    actor.log_std = _head(None, new_arch[-1], source_arch[-1], actor.log_std.out_features)
    for critic in (policy.critic, policy.critic_target):
        q_in = critic.q_networks[0][0].in_features
        for index in range(len(critic.q_networks)):
            q_net = nn.Sequential(
                ProgressiveColumn(q_in, source_arch, new_arch, activation),
                _head(None, new_arch[-1], source_arch[-1], 1),
            )
            critic.q_networks[index] = q_net
            critic.add_module(f"qf{index}", q_net)
    policy.critic_target.load_state_dict(policy.critic.state_dict())


def _activation_of(policy: Any) -> type[nn.Module]:
    activation = getattr(policy, "activation_fn", None)
    if activation is None:
        activation = policy.net_args["activation_fn"]  # SAC keeps it in net_args
    return cast(type[nn.Module], activation)


def source_column_weights(source: dict[str, torch.Tensor], algo: str, new_arch: list[int]) -> dict[str, torch.Tensor]:
    """The target policy's state-dict entries that come from the source: its trunks (as the frozen source
    columns) and its heads (as the source half of each ``[new | source]`` head)."""
    width = new_arch[-1]
    out: dict[str, torch.Tensor] = {}

    def trunk(source_prefix: str, target_prefix: str) -> None:
        for key, tensor in source.items():
            if key.startswith(source_prefix + "."):
                out[target_prefix + ".source." + key.removeprefix(source_prefix + ".")] = tensor

    def head(source_prefix: str, target_prefix: str) -> None:
        weight = source[source_prefix + ".weight"]
        out[target_prefix + ".weight"] = torch.cat([torch.zeros(weight.shape[0], width), weight], dim=1)
        out[target_prefix + ".bias"] = source[source_prefix + ".bias"]

    if algo == "ppo":
        for name in ("policy_net", "value_net"):
            trunk(f"mlp_extractor.{name}", f"mlp_extractor.{name}")
        head("action_net", "action_net")
        head("value_net", "value_net")
        out["log_std"] = source["log_std"]
        return out
    trunk("actor.latent_pi", "actor.latent_pi")
    head("actor.mu", "actor.mu")
    head("actor.log_std", "actor.log_std")
    for critic in ("critic", "critic_target"):
        q_nets = sorted({key.split(".")[1] for key in source if key.startswith(critic + ".qf")})
        for q in q_nets:
            linears = sorted({int(key.split(".")[2]) for key in source if key.startswith(f"{critic}.{q}.")})
            last = linears[-1]
            for key, tensor in source.items():
                prefix = f"{critic}.{q}."
                if key.startswith(prefix) and int(key.split(".")[2]) != last:
                    out[f"{critic}.{q}.0.source." + key.removeprefix(prefix)] = tensor
            head(f"{critic}.{q}.{last}", f"{critic}.{q}.1")
    return out
