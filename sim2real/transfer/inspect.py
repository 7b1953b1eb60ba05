"""``sim2real inspect``: a saved model's layer groups, read weights-only."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sim2real.modelfile import read_model
from sim2real.transfer.groups import groups_of


def inspect_model(path: Path, console: Console | None = None) -> Table:
    """Prints (and returns) one row per layer group: role, shapes, parameter count, state, learning-rate scale.

    The state comes from the run's ``transfer.json`` when the model is a transfer run's; any other model has
    every group trainable except SAC's target critic (updated by Polyak averaging, not by an optimizer).
    """
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # piped output: whole group names rather than a narrow table
    model = read_model(path, with_normalization=False)
    saved = (model.transfer_state or {}).get("groups", {})
    groups = groups_of(list(model.policy.items()))
    title = f"{model.path}: {model.algo.upper()}, {model.num_timesteps:,} steps"
    if model.transfer_state:
        title += f", transfer method {model.transfer_state.get('method')}"
    table = Table(title=title)
    # Whole names even in a narrow terminal: they are what transfer.freeze.groups takes.
    table.add_column("group", no_wrap=True, min_width=max((len(g.name) for g in groups), default=5))
    for column in ("role", "shape", "params", "state", "lr scale"):
        table.add_column(column, justify="right" if column in ("params", "lr scale") else "left", no_wrap=True)
    trainable = total = 0
    for group in groups:
        entry = saved.get(group.name, {})
        default = "target" if group.role == "target" else ("frozen" if group.role == "source" else "trainable")
        state = entry.get("state", default)
        scale = entry.get("lr_scale")
        total += group.numel
        trainable += group.numel if state == "trainable" else 0
        style = {"frozen": "cyan", "target": "dim"}.get(state, "")
        table.add_row(
            group.name,
            group.role + (f" {group.depth}" if group.depth is not None else ""),
            group.shapes(),
            f"{group.numel:,}",
            f"[{style}]{state}[/{style}]" if style else state,
            f"{scale:g}" if isinstance(scale, float | int) else "",
        )
    table.caption = f"{trainable:,} of {total:,} parameters trainable"
    if model.observation is not None and model.action is not None:
        table.caption += f"; observations {model.observation.shape}, actions {model.action.shape}"
    console.print(table)
    return table
