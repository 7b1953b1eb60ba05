"""The library's verbs, each one call from files to results: what the ``sim2real`` commands do, without argparse.

Each function takes paths or objects, checks its arguments before any work, and raises
:class:`~sim2real.errors.Sim2RealError` naming the argument that is wrong. The CLI is these calls plus printing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim2real.config import Config, SweepParam, TransferConfig, load_config, parse_config
from sim2real.deploy import ExportResult
from sim2real.domain import DomainSpec
from sim2real.errors import Sim2RealError
from sim2real.evaluation import DomainResult, evaluate_config
from sim2real.evaluation.batched import ObservationNormalizer
from sim2real.evaluation.scorecard import Scorecard, find_runs, score
from sim2real.evaluation.sweep import Sweep, run_sweep
from sim2real.models import load_policy
from sim2real.runs import EVAL, RunFolder, own_inputs
from sim2real.training import TrainResult, train

__all__ = ["compare", "evaluate", "run_config", "sweep", "train_transfer"]


def run_config(
    model: Path, config: str | Path | Config | None = None, overrides: Sequence[str] | None = None
) -> Config:
    """The config an evaluation of ``model`` uses: ``config`` when given (with the model's own observation
    history and privileged inputs, when its run folder has them: the policy's input is what it was trained on),
    else the model's run folder's own. ``overrides`` (``FIELD=VALUE``, as the CLI's ``--set``) change the config
    file's fields as it is read; the file itself is left as it is."""
    if isinstance(config, Config):
        if overrides:
            raise Sim2RealError("{overrides} apply to a config file; change a Config with model_copy", overrides=None)
        return own_inputs(model, config)
    if config is not None:
        return own_inputs(model, load_config(config, list(overrides or [])))
    run = RunFolder(model if model.is_dir() else model.parent)
    if not run.config_file.is_file():
        raise Sim2RealError(
            f"{model}: not a run folder with a {run.config_file.name}; pass {{config}} CONFIG", config=None
        )
    return load_config(run.config_file, list(overrides or []))


def train_transfer(
    config: str | Path | Config,
    source: str | Path | None = None,
    *,
    method: str | None = None,
    target: str | None = None,
    **train_options: Any,
) -> TrainResult:
    """Trains on a target domain starting from a source model (or from scratch, the baseline).

    Args:
        config: a config (or its file) whose ``targets`` hold the target; its ``transfer`` section, if any,
            gives the settings (default: ``finetune``).
        source: the source's run folder or model zip (default: ``transfer.source``); none for ``scratch``.
        method: ``scratch``, ``finetune``, ``freeze``, ``progressive`` or ``prognet`` (overrides the config's).
        target: the target domain to train on (default: the config's only target).
        train_options: passed to :func:`~sim2real.training.train` (callbacks, policy, trust_source, console...).

    Example:
        >>> import sim2real
        >>> source = sim2real.train(sim2real.load_config("configs/inverted_double_pendulum/nominal.yaml"))
        >>> run = sim2real.train_transfer("configs/inverted_double_pendulum/transfer.yaml", source.run_dir,
        ...                               method="freeze", target="heavy_weak")  # doctest: +SKIP
    """
    loaded = config if isinstance(config, Config) else load_config(config)
    chosen = {name: value for name, value in (("method", method), ("target", target)) if value is not None}
    settings = (loaded.transfer or TransferConfig()).model_copy(update=chosen)
    # Validated again as a whole: an unknown method or target is refused, and no target means the only one.
    # Unset fields stay unset, so that the recipe's remedies are the chosen method's, not the config's.
    data = {**loaded.model_dump(mode="json"), "transfer": settings.model_dump(mode="json", exclude_unset=True)}
    resolved = parse_config(data, "config" if isinstance(config, Config) else str(config))
    return train(resolved, source=source, **train_options)


def evaluate(
    model: str | Path,
    config: str | Path | Config | None = None,
    *,
    domains: Sequence[str] | None = None,
    episodes: int | None = None,
    seed: int = 0,
    deterministic: bool = True,
    n_envs: int = 16,
    trust_source: bool = False,
) -> list[DomainResult]:
    """Zero-shot returns of a saved model (run folder or zip, read weights-only) on a config's domains.

    Args:
        model: a run folder or a model zip.
        config: the config whose source and targets to evaluate on (default: the run folder's own).
        domains: only these domains (default: the source and every target).
        episodes: episodes per domain (default: the config's ``eval.episodes``).
        seed: evaluation seed; every domain gets its own, derived from it.
        deterministic: the mean action (True) or sampled actions.
        n_envs: env copies stepped together.
        trust_source: allow reading a pickled ``vecnormalize.pkl``.

    Example:
        >>> import sim2real
        >>> results = sim2real.evaluate("runs/inverted_double_pendulum_v5/nominal/seed_0")  # doctest: +SKIP
        >>> {r.domain: round(r.mean_reward) for r in results}  # doctest: +SKIP
        {'source': 9359, 'heavy_poles': 9358, ...}
    """
    path = Path(model)
    resolved = run_config(path, config)
    unknown = [name for name in domains or [] if name not in resolved.domains()]
    if unknown:
        raise Sim2RealError(f"{{domain}}: no such domain (domains: {', '.join(resolved.domains())})", domain=unknown[0])
    policy, model_file = load_policy(resolved, path, trusted=trust_source)
    return evaluate_config(
        policy,
        resolved,
        ObservationNormalizer.from_state(model_file.normalization),
        domains=list(domains) if domains else None,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        n_envs=n_envs,
    )


def model_labels(paths: Sequence[Path]) -> list[str]:
    """A column label per model: ``nominal/seed_0`` for a run folder, the file name for a zip; whole paths
    (then numbers) where two would read the same."""

    def label(path: Path) -> str:
        folder = path if path.is_dir() else path.parent
        return f"{folder.parent.name}/{folder.name}" if folder.name.startswith("seed_") else path.stem

    labels = [label(path) for path in paths]
    if len(set(labels)) < len(labels):
        labels = [str(path) for path in paths]
    if len(set(labels)) < len(labels):  # the same model twice: keep both columns apart
        labels = [f"{text} ({index + 1})" for index, text in enumerate(labels)]
    return labels


def sweep(
    models: Sequence[str | Path],
    params: Sequence[SweepParam],
    config: str | Path | Config | None = None,
    *,
    domain: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    n_envs: int = 16,
    trust_source: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> Sweep:
    """Zero-shot returns of saved models over a 1-D or 2-D grid of dynamics shifts.

    Args:
        models: run folders or model zips (read weights-only).
        params: one or two axes (:class:`~sim2real.config.SweepParam`).
        config: names the env (default: the first model's run config).
        domain: apply the shifts on top of this domain (default: the nominal model).
        episodes: episodes per grid point; the same episode seeds at every point.
        progress: called as ``progress(done, total)`` after each point.

    Example:
        >>> import sim2real
        >>> axis = sim2real.SweepParam(quantity="body_mass", select="all", scale=[1.0, 2.0], points=5)
        >>> grid = sim2real.sweep(["runs/inverted_double_pendulum_v5/nominal/seed_0"], [axis])  # doctest: +SKIP
    """
    if not 1 <= len(params) <= 2:
        raise Sim2RealError(f"a sweep takes one or two {{params}} (got {len(params)})", params=None)
    paths = [Path(m) for m in models]
    if not paths:
        raise Sim2RealError("a sweep needs at least one model")
    resolved = run_config(paths[0], config)
    if domain is not None and domain not in resolved.domains():
        raise Sim2RealError(f"{{domain}}: no such domain (domains: {', '.join(resolved.domains())})", domain=domain)
    base = DomainSpec.from_config(resolved.domains()[domain]) if domain else None
    loaded, inputs = [], []
    for label, path in zip(model_labels(paths), paths, strict=True):
        # Each policy sees the input it was trained on: its own run's history and privileged inputs (a memoryless
        # source, a history source and a teacher side by side), else the config's.
        own = own_inputs(path, resolved)
        policy, model_file = load_policy(own, path, trusted=trust_source)
        loaded.append((label, policy, ObservationNormalizer.from_state(model_file.normalization)))
        inputs.append(own)
    return run_sweep(loaded, resolved, list(params), base=base, episodes=episodes, seed=seed, n_envs=n_envs,
                     progress=progress, inputs=inputs)  # fmt: skip


def compare(
    runs: Sequence[str | Path],
    *,
    threshold: float | None = None,
    threshold_fraction: float = 0.9,
    seed: int = 0,
    reference: str | Path | None = None,
    skip_unreadable: bool = False,
) -> Scorecard:
    """The transfer scorecard of transfer runs (folders or glob patterns) against their targets' scratch runs.

    ``reference``: a run folder of a policy trained on the target itself; its final evaluation on each target
    adds the return as a share of its and the target steps to 95% of it. A transfer run that cannot be read is
    an error naming its file; ``skip_unreadable`` leaves such runs out and lists them in the card's notes.

    Example:
        >>> import sim2real
        >>> card = sim2real.compare(["runs/inverted_double_pendulum_v5"])  # doctest: +SKIP
        >>> [(s.method, s.estimates["transfer_ratio"].iqm) for s in card.scores]  # doctest: +SKIP
    """
    skipped: list[str] | None = [] if skip_unreadable else None
    found = find_runs([str(r) for r in runs], skipped)
    references: dict[str, float] = {}
    if reference is not None:
        evaluation = RunFolder.open(Path(reference)).read_eval()
        missing = sorted({r.target for r in found} - set(evaluation))
        if not evaluation or missing:
            raise Sim2RealError(
                f"{{reference}}: no final evaluation on {', '.join(missing) or 'any target'} ({EVAL})",
                reference=reference,
            )
        references = {r.target: float(evaluation[r.target]["mean_reward"]) for r in found}
    card = score(found, threshold=threshold, threshold_fraction=threshold_fraction, seed=seed,
                 references=references)  # fmt: skip
    card.notes += [f"skipped, unreadable: {error}" for error in skipped or []]
    return card


def export(
    model: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    config: str | Path | Config | None = None,
    *,
    check_steps: int = 1000,
    trust_source: bool = False,
) -> ExportResult:
    """Writes a run's deterministic policy, with its observation normalization and action bounds built in, as
    ONNX or TorchScript for a robot's control loop, checked against ``predict`` on ``check_steps`` observations
    recorded on the source domain (see :mod:`sim2real.deploy`).

    Example:
        >>> import sim2real
        >>> result = sim2real.export("runs/inverted_double_pendulum_v5/nominal/seed_0", "onnx")  # doctest: +SKIP
        >>> result.path, result.max_abs_difference  # doctest: +SKIP
        (PosixPath('runs/inverted_double_pendulum_v5/nominal/seed_0/policy.onnx'), 2.9e-07)
    """
    from sim2real.deploy import SUFFIX, export_policy

    if format not in SUFFIX:
        raise Sim2RealError(f"{{format}}: unknown export format (allowed: {', '.join(SUFFIX)})", format=format)
    path = Path(model)
    resolved = run_config(path, config)
    policy, model_file = load_policy(resolved, path, trusted=trust_source)
    folder = path if path.is_dir() else path.parent
    target = Path(out) if out is not None else folder / f"policy{SUFFIX[format]}"
    normalizer = ObservationNormalizer.from_state(model_file.normalization)
    return export_policy(policy, normalizer, resolved, target, format, check_steps)  # type: ignore[arg-type]
