"""Robustness sweeps: a policy's return over a 1-D or 2-D grid of dynamics shifts.

Every grid point is a domain (the base domain plus the swept changes at that point's values) evaluated with the
batched evaluator and the same episode seeds, so neighbouring points differ only by their dynamics.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.config import Config, ParamRange, SweepParam
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.dynamics import Change
from sim2real.errors import Sim2RealError
from sim2real.evaluation import DomainResult, evaluate_domain
from sim2real.evaluation.batched import ObservationNormalizer
from sim2real.evaluation.metrics import grid_statistics
from sim2real.io import atomic_path, write_json, write_text


@dataclass
class SweptModel:
    """One model's results over the grid: ``results[i]`` (1-D) or ``results[i * len(axis 2) + j]`` (2-D)."""

    label: str
    results: list[DomainResult] = field(default_factory=list)

    def grid(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        values = [getattr(r, key) for r in self.results]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(shape)


@dataclass
class Sweep:
    params: list[SweepParam]
    models: list[SweptModel]
    episodes: int
    seed: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(p.points for p in self.params)

    def tag(self) -> str:
        return "__".join(p.tag() for p in self.params)

    def points(self) -> list[tuple[float, ...]]:
        return list(itertools.product(*(p.values() for p in self.params)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": [{"label": p.label(), **p.model_dump(mode="json"), "values": p.values()} for p in self.params],
            "episodes": self.episodes,
            "seed": self.seed,
            "models": {
                m.label: [
                    {"point": list(point), **r.as_dict()} for point, r in zip(self.points(), m.results, strict=True)
                ]
                for m in self.models
            },
            "grid": {m.label: grid_statistics([r.mean_reward for r in m.results]) for m in self.models},
        }


def _change(param: ParamRange, value: float) -> Change:
    """The dynamics change of one grid point on one axis."""
    return Change(quantity=param.quantity, op=param.op, value=value, select=param.select)


def check_params(config: Config, params: list[SweepParam], base: DomainSpec) -> None:
    """A sweep's one or two axes, checked as :func:`check_ranges` does."""
    if not 1 <= len(params) <= 2:
        raise Sim2RealError(f"a sweep takes one or two {{params}} (got {len(params)})", params=None)
    check_ranges(config, params, base)


def check_ranges(config: Config, params: Sequence[ParamRange], base: DomainSpec) -> None:
    """Builds the env at both ends of every range, so an unknown element or an impossible value (a negative
    mass) fails before any work."""
    for param in params:
        for value in param.bounds:
            spec = DomainSpec(changes=(*base.changes, _change(param, value)), reality_gap=base.reality_gap)
            try:
                env_kwargs: dict[str, Any] = dict(config.env_kwargs)
                make_domain_env(config.env, spec, seed=0, check_friction=False, **env_kwargs).close()
            except Sim2RealError as error:
                raise Sim2RealError(f"{{params}} {param.label()} = {value:g}: {error}", params=None) from None


def run_sweep(
    models: list[tuple[str, BaseAlgorithm, ObservationNormalizer | None]],
    config: Config,
    params: list[SweepParam],
    *,
    base: DomainSpec | None = None,
    episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
    n_envs: int = 16,
    progress: Any = None,
    inputs: Sequence[Config] | None = None,
) -> Sweep:
    """Evaluates each model at every grid point (row-major: the first axis varies slowest).

    Args:
        models: (label, model, observation normalizer) of each model to sweep.
        config: names the env (and its keywords) and the success threshold.
        inputs: each model's own config, for its policy inputs (``history``, ``privileged``; default: ``config``).
        params: one or two axes.
        base: the domain the shifts are applied on top of (default: the nominal model).
        progress: a callable ``progress(done, total)`` called after each point.
    """
    base = base or DomainSpec()
    check_params(config, params, base)
    sweep = Sweep(params, [SweptModel(label) for label, _, _ in models], episodes, seed)
    total = len(models) * len(sweep.points())
    done = 0
    own = list(inputs) if inputs is not None else [config] * len(models)
    for swept, (_, model, normalizer), mine in zip(sweep.models, models, own, strict=True):
        for point in sweep.points():
            changes = tuple(_change(p, v) for p, v in zip(params, point, strict=True))
            spec = DomainSpec(changes=(*base.changes, *changes), reality_gap=base.reality_gap)
            swept.results.append(
                evaluate_domain(
                    model,
                    config.env,
                    spec,
                    env_kwargs=config.env_kwargs,
                    episodes=episodes,
                    deterministic=deterministic,
                    seed=seed,
                    normalization=normalizer,
                    history=mine.history,
                    privileged=mine.privileged_terms(),
                    name=", ".join(f"{p.label()}={v:g}" for p, v in zip(params, point, strict=True)),
                    success_threshold=config.eval.success_threshold,
                    n_envs=n_envs,
                )
            )
            done += 1
            if progress is not None:
                progress(done, total)
    return sweep


# --------------------------------------------------------------------------------------------- outputs


def sweep_csv(sweep: Sweep) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", *(p.label() for p in sweep.params), "mean_reward", "ci_low", "ci_high", "iqm_reward",
                     "std_reward", "mean_ep_length", "episodes"])  # fmt: skip
    for model in sweep.models:
        for point, r in zip(sweep.points(), model.results, strict=True):
            writer.writerow([model.label, *point, r.mean_reward, "" if r.ci_low is None else r.ci_low,
                             "" if r.ci_high is None else r.ci_high, r.iqm_reward, r.std_reward, r.mean_ep_length,
                             r.episodes])  # fmt: skip
    return buffer.getvalue()


def sweep_figure(sweep: Sweep) -> Any:
    """1-D: return against the parameter with the bootstrap 95% CI as a band, one line per model.
    2-D: one heatmap of the mean return per model, side by side on a shared colour scale."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    if len(sweep.params) == 1:
        param = sweep.params[0]
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        x = np.array(param.values())
        for model in sweep.models:
            mean = model.grid("mean_reward", sweep.shape)
            axes.plot(x, mean, marker="o", label=model.label)
            low, high = model.grid("ci_low", sweep.shape), model.grid("ci_high", sweep.shape)
            if not np.isnan(low).all():
                axes.fill_between(x, low, high, alpha=0.25)
        axes.set_xlabel(param.label())
        axes.set_ylabel(f"return (mean, 95% CI; {sweep.episodes} episodes)")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        return figure
    rows, cols = sweep.params
    grids = [m.grid("mean_reward", sweep.shape) for m in sweep.models]
    vmin = float(min(np.nanmin(g) for g in grids))
    vmax = float(max(np.nanmax(g) for g in grids))
    figure, axes_list = plt.subplots(
        1, len(grids), figsize=(5.2 * len(grids) + 0.8, 4.6), squeeze=False, layout="constrained"
    )
    image = None
    for axes, model, grid in zip(axes_list[0], sweep.models, grids, strict=True):
        image = axes.imshow(grid, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        axes.set_xticks(range(cols.points), [f"{v:g}" for v in cols.values()], rotation=45)
        axes.set_yticks(range(rows.points), [f"{v:g}" for v in rows.values()])
        axes.set_xlabel(cols.label())
        axes.set_ylabel(rows.label())
        axes.set_title(model.label)
        if grid.size <= 100:
            for (i, j), value in np.ndenumerate(grid):
                color = "white" if value < (vmin + vmax) / 2 else "black"
                axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color=color)
    assert image is not None
    figure.colorbar(image, ax=axes_list[0].tolist(), label=f"mean return ({sweep.episodes} episodes)")
    return figure


def write_sweep(sweep: Sweep, folder: Path) -> dict[str, Path]:
    """Writes ``sweep.json``, ``sweep.csv`` and ``sweep.png`` into ``folder`` (each atomically)."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "sweep.json", "csv": folder / "sweep.csv", "png": folder / "sweep.png"}
    write_json(paths["json"], sweep.as_dict())
    write_text(paths["csv"], sweep_csv(sweep))
    figure = sweep_figure(sweep)
    with atomic_path(paths["png"]) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
    return paths


def log_sweep(sweep: Sweep, model_index: int, logdir: Path) -> None:
    """Adds one model's sweep to a TensorBoard run: the figure (IMAGES), the values as scalars
    ``sweep/<tag>/mean_reward`` with the grid index as step, and a table under TEXT."""
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    model = sweep.models[model_index]
    single = Sweep(sweep.params, [model], sweep.episodes, sweep.seed)
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        tag = f"sweep/{sweep.tag()}"
        figure = sweep_figure(single)
        writer.add_figure(tag, figure, global_step=0)
        plt.close(figure)
        for index, result in enumerate(model.results):
            writer.add_scalar(f"{tag}/mean_reward", result.mean_reward, index)
            writer.add_scalar(f"{tag}/iqm_reward", result.iqm_reward, index)
        header = " | ".join([*(p.label() for p in sweep.params), "mean return", "95% CI"])
        lines = [f"| {header} |", "|" + "---|" * (len(sweep.params) + 2)]
        for point, r in zip(sweep.points(), model.results, strict=True):
            interval = f"[{r.ci_low:.1f}, {r.ci_high:.1f}]" if r.ci_low is not None and r.ci_high is not None else "-"
            lines.append("| " + " | ".join([*(f"{v:g}" for v in point), f"{r.mean_reward:.1f}", interval]) + " |")
        writer.add_text(tag, "\n".join(lines), global_step=0)
    finally:
        writer.close()
