"""The ``sim2real`` command: thin, it parses arguments and calls the library.

Every failure a user can cause ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console

from sim2real.config import TRANSFER_METHODS
from sim2real.errors import NoEffectWarning, Sim2RealError, python_spelling

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sim2real.config import SweepParam
    from sim2real.training import TrainResult

# Library arguments named in error messages, and the flag that sets each from the command line.
FLAGS = {
    "resume": "--resume",
    "trust_source": "--trust-source",
    "overrides": "--set",
    "source": "--source",
    "params": "--param",
    "config": "--config",
    "domain": "--domain",
    "address": "--address",
    "backend": "--backend",
    "reference": "--reference",
    "skip_unreadable": "--skip-unreadable",
    "horizon": "--horizon",
    "max_generations": "--max-generations",
    "out": "--out",
}

# One flag, one meaning, in every command that reads files: nothing is unpickled without it.
TRUST_HELP = (
    "allow reading pickled files (a vecnormalize.pkl, an old checkpoint's replay buffer); a pickle can run code"
)

DEFAULT_CONFIG = "configs/inverted_double_pendulum/nominal.yaml"
DEFAULT_STUDY = "configs/inverted_double_pendulum/study.yaml"


def _default_config(default: str = DEFAULT_CONFIG) -> str:
    """A built-in default (the InvertedDoublePendulum config or quick study), from the working folder or the checkout."""
    here = Path(default)
    if here.is_file():
        return str(here)
    checkout = Path(__file__).resolve().parents[1] / default
    return str(checkout if checkout.is_file() else here)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim2real", description="Sim-to-real transfer for reinforcement learning on MuJoCo."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_train(commands)
    _add_transfer(commands)
    _add_evaluate(commands)
    _add_sweep(commands)
    _add_compare(commands)
    _add_study(commands)
    _add_inspect(commands)
    _add_export(commands)
    _add_record(commands)
    _add_identify(commands)
    return parser


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a source policy and evaluate it on the source and every target",
        description="Train a policy on a config's source domain, then evaluate it on the source and every target.",
    )
    train.add_argument("config", nargs="?", default=None, help=f"config YAML (default: {DEFAULT_CONFIG})")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one config field, e.g. --set train.total_timesteps=20000 (repeatable)",
    )
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--trust-source", action="store_true", help=TRUST_HELP)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_transfer(commands: Any) -> None:
    transfer = commands.add_parser(
        "transfer",
        help="train on a target domain starting from a source model",
        description="Train on a config's target domain starting from a source model (or from scratch, the "
        "baseline), then evaluate on the source and every target. The run lands in "
        "<root>/<env>/<experiment>/<target>/<method>/seed_<n>.",
    )
    transfer.add_argument("config", nargs="?", default=None, help=f"config YAML (default: {DEFAULT_CONFIG})")
    transfer.add_argument("--source", type=Path, metavar="RUN_DIR_OR_ZIP", help="the source model (run folder or zip)")
    transfer.add_argument("--method", choices=TRANSFER_METHODS, help="how to reuse the source (default: finetune)")
    transfer.add_argument("--target", metavar="NAME", help="the target domain to train on (default: the only one)")
    transfer.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one config field, e.g. --set transfer.freeze.layers=2 (repeatable)",
    )
    transfer.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a transfer run")
    transfer.add_argument("--trust-source", action="store_true", help=TRUST_HELP)
    transfer.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="zero-shot evaluation of a saved model on a config's domains",
        description="Evaluate a saved model (run folder or zip, read weights-only) on a config's source and targets: "
        "mean, std, interquartile mean and bootstrap 95% CI of the return per domain. Saved normalization "
        "statistics are applied in evaluation mode (not updated; returns are the env's own rewards).",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="run folder or model zip")
    _evaluation_options(
        evaluate, "run folder's config.yaml", None, "episodes per domain (default: the config's eval.episodes)"
    )
    evaluate.add_argument("--domain", action="append", metavar="NAME", help="only this domain (repeatable)")
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean action")
    evaluate.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    evaluate.add_argument("--csv", type=Path, metavar="PATH", help="also write one CSV row per domain")


def _add_sweep(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="evaluate saved models over a 1-D or 2-D grid of dynamics shifts",
        description="Evaluate one or more saved models over a grid of dynamics shifts (both ends of each range "
        "included) and write sweep.csv, sweep.json and sweep.png (a curve with a 95% CI band, or heatmaps); the "
        "figure and values also go to each model's TensorBoard run (or --logdir).",
    )
    sweep.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="run folders or model zips")
    sweep.add_argument(
        "--param",
        action="append",
        required=True,
        metavar="SPEC",
        help="one axis as a YAML mapping, e.g. '{quantity: body_mass, select: torso, scale: [0.5, 2.0], points: 7}' "
        "(give one or two)",
    )
    _evaluation_options(sweep, "first model's run config", 10, "episodes per grid point (default: 10)")
    sweep.add_argument(
        "--domain",
        metavar="NAME",
        help="apply the shifts on top of this domain of the config: source or a target "
        "(default: none, the unchanged model)",
    )
    sweep.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: <run>/sweeps/<params>)")
    sweep.add_argument("--logdir", type=Path, metavar="DIR", help="TensorBoard folder (default: each run's tb/)")


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="score transfer runs against scratch: jumpstart, final return, time to threshold, transfer ratio",
        description="Read the learning curves of transfer runs (folders or glob patterns; a folder is searched "
        "for runs), group them by target and method, and score each method against the scratch runs of its "
        "target across seeds (interquartile mean, stratified bootstrap 95% CI). Writes scorecard.md, "
        "scorecard.json, curves.png and a TensorBoard folder for the HPARAMS dashboard.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_GLOB", help="transfer run folders or patterns")
    compare.add_argument(
        "--threshold", type=_finite, help="return that counts as reached (default: a fraction of scratch)"
    )
    compare.add_argument(
        "--threshold-fraction",
        type=_finite,
        default=0.9,
        help="threshold as a fraction of scratch's final return (default: 0.9)",
    )
    compare.add_argument(
        "--reference",
        type=Path,
        metavar="RUN_DIR",
        help="a run trained on the target itself: adds the return as a share of its and the steps to 95%% of it",
    )
    compare.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out transfer runs that cannot be read (listed on stderr) instead of stopping at the first",
    )
    compare.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: scorecard/ beside the runs)")
    compare.add_argument("--seed", type=_non_negative, default=0, help="bootstrap seed (default: 0)")


def _add_study(commands: Any) -> None:
    study = commands.add_parser(
        "study",
        help="pretrain sources, transfer with every method to every target over seeds, and report",
        description="Run a whole transfer study from one file: pretrain the sources, train every method x target x "
        "seed (scratch included), evaluate zero-shot and after transfer, run the sweeps, and write "
        "<study>/report/ (study.md, study.json, scorecard, curves and heatmap PNGs; TensorBoard over the whole "
        "folder). Running it again skips finished runs and resumes interrupted ones.",
    )
    study.add_argument("config", nargs="?", default=None, help=f"study YAML (default: {DEFAULT_STUDY})")
    study.add_argument(
        "--workers", type=_positive, help="runs at a time (default: the machine's cores, or the Ray cluster's CPUs)"
    )
    study.add_argument("--backend", choices=("local", "ray"), default="local", help="local process pool or Ray")
    study.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to join (default: start one here)")
    study.add_argument("--output", type=Path, metavar="DIR", help="study folder (default: the file's output)")
    study.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one study field, e.g. --set budgets.transfer=20000 (repeatable)",
    )
    study.add_argument("--dry-run", action="store_true", help="print the plan (what runs, resumes, is skipped) only")


def _add_inspect(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="list a model's layer groups with shapes, sizes and frozen state",
        description="List the layer groups of a saved model (a run folder or a zip), read weights-only.",
    )
    inspect.add_argument("model", type=Path, metavar="MODEL", help="run folder or model zip")


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write a policy as ONNX or TorchScript for a robot's control loop",
        description="Write a run's deterministic policy with its observation normalization and action bounds "
        "built in (raw observations in, env actions out) as ONNX or TorchScript, then check it against "
        "predict on observations recorded on the source domain (max abs difference <= 1e-5).",
    )
    export.add_argument("model", type=Path, metavar="MODEL", help="run folder (or model zip with its statistics)")
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default: onnx")
    export.add_argument("--out", type=Path, metavar="PATH", help="default: policy.onnx / policy.pt in the run folder")
    export.add_argument("--config", type=Path, help="config YAML (default: the run's own)")
    export.add_argument("--check-steps", type=_positive, default=1000, help="recorded observations to check on")
    export.add_argument("--trust-source", action="store_true", help=TRUST_HELP)


def _add_record(commands: Any) -> None:
    record = commands.add_parser(
        "record",
        help="roll a policy (or random actions) out on a domain and write its trajectories",
        description="Roll a policy, or uniform random actions for excitation, out on a domain and write every step "
        "(qpos, qvel, the action sent, observation, reward, episode) as .npz or .csv: the format that "
        "`sim2real identify` reads, and that a robot's logs are written in (README).",
    )
    record.add_argument("model", metavar="MODEL", help="run folder or model zip, or 'random' for random actions")
    record.add_argument("--config", type=Path, help="config YAML (default: the model's run config; for random: "
                        "the built-in InvertedDoublePendulum config)")  # fmt: skip
    record.add_argument("--domain", default="source", metavar="NAME", help="domain to record on (default: source)")
    record.add_argument("--episodes", type=_positive, default=10, help="episodes (default: 10)")
    record.add_argument("--out", type=Path, required=True, metavar="FILE", help="the recording (.npz or .csv)")
    record.add_argument("--seed", type=_non_negative, default=0, help="seeds resets, actions and noise (default: 0)")
    record.add_argument("--stochastic", action="store_true", help="sample the policy's actions (more excitation)")
    record.add_argument("--noise", type=_non_negative_float, default=0.0, metavar="STD",
                        help="Gaussian sensor noise on the recorded qpos, qvel and observation (default: 0)")  # fmt: skip
    record.add_argument("--latency", type=_non_negative, default=0, metavar="STEPS",
                        help="control steps between a command being sent and applied (default: 0)")  # fmt: skip
    record.add_argument("--trust-source", action="store_true", help=TRUST_HELP)


def _add_identify(commands: Any) -> None:
    identify = commands.add_parser(
        "identify",
        help="fit dynamics quantities so that the simulator reproduces recorded trajectories",
        description="Fit named dynamics quantities (CMA-ES over mujoco.rollout replays of the recorded commands "
        "from recorded states) and write identified.yaml (the estimate as a source domain), "
        "identified_randomized.yaml (randomized over the estimate's uncertainty), report.md/json, fit.png and a "
        "TensorBoard run.",
    )
    identify.add_argument("recording", type=Path, metavar="FILE", help="a recording (.npz or .csv)")
    identify.add_argument("--config", type=Path, help="config YAML whose env and source domain the fit starts "
                          "from (default: the built-in InvertedDoublePendulum config)")  # fmt: skip
    identify.add_argument(
        "--param",
        action="append",
        required=True,
        metavar="SPEC",
        help="a quantity to fit as a YAML mapping, e.g. '{quantity: body_mass, select: torso, scale: [0.5, 3]}' "
        "(repeat for each)",
    )
    identify.add_argument("--horizon", type=_positive, default=3, help="control steps per replay (default: 3)")
    identify.add_argument("--windows", type=_positive, default=128, help="replay windows at most (default: 128)")
    identify.add_argument("--max-generations", type=_positive, default=200, help="CMA-ES generations (default: 200)")
    identify.add_argument("--popsize", type=_positive, help="candidates per generation (default: CMA-ES's)")
    identify.add_argument("--seed", type=_non_negative, default=0, help="seeds the search (default: 0)")
    identify.add_argument("--threads", type=_positive, help="rollout threads (default: the cores available)")
    identify.add_argument("--latency", type=_non_negative, nargs="+", default=[0], metavar="STEPS",
                          help="candidate delays between a command and the motor, in control steps; each is fitted "
                          "and the best kept (default: 0)")  # fmt: skip
    identify.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: identified/<FILE's name>)")


def _record(args: argparse.Namespace, console: Console) -> int:
    from sim2real.api import run_config
    from sim2real.config import load_config
    from sim2real.identification import record

    check_output(args.out, "--out")
    if args.out.suffix not in (".npz", ".csv"):
        raise Sim2RealError(f"--out {args.out}: a recording is a .npz or .csv file")
    random = args.model == "random"
    model = None if random else Path(args.model)
    if model is not None and not model.exists():
        raise Sim2RealError(f"{model}: no such run folder or model zip (or 'random' for random actions)")
    config = load_config(args.config or _default_config()) if model is None else run_config(model, args.config)
    trajectories = record(config, model_path=model, domain=args.domain, episodes=args.episodes, seed=args.seed,
                          deterministic=not args.stochastic, noise=args.noise, latency=args.latency,
                          trust_source=args.trust_source)  # fmt: skip
    trajectories.write(args.out)
    console.print(
        f"wrote {args.out}: {trajectories.episodes} episodes, {trajectories.steps:,} steps on {config.env} "
        f"({args.domain})",
        soft_wrap=True,
    )
    return 0


def _identify(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from sim2real.config import IdentifyParam, load_config
    from sim2real.identification import identify, write_identification

    params = [parse_param(text, IdentifyParam, "{quantity: body_mass, select: all, scale: [0.5, 2.0]}")
              for text in args.param]  # fmt: skip
    out = args.out or Path("identified") / args.recording.stem
    check_output(out, "--out", folder=True)
    config = load_config(args.config or _default_config())
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("identifying", total=args.max_generations * len(set(args.latency)))
        result = identify(args.recording, config, params, horizon=args.horizon, windows=args.windows, seed=args.seed,
                          max_generations=args.max_generations, popsize=args.popsize, threads=args.threads,
                          latency=args.latency,
                          on_generation=lambda *_: progress.advance(task))  # fmt: skip
    paths = write_identification(result, out, command=_command_line())
    _print_identification(result, console)
    console.print(f"wrote {out}: {', '.join(p.name for p in paths.values())}", soft_wrap=True)
    return 0


def _print_identification(result: Any, console: Console) -> None:
    from rich.table import Table

    from sim2real.identification.fitting import significant

    fit = result.fit
    latency = f", latency {result.latency} steps" if len(result.latency_losses) > 1 or result.latency else ""
    table = Table(title=f"identified from {result.recording} in {fit.seconds:.1f} s "
                  f"(error {fit.loss_start:.3g} -> {fit.loss:.3g}{latency})")  # fmt: skip
    for column in ("parameter", "op", "estimate", "95% interval", "identified"):
        table.add_column(column)
    for e in fit.estimates:
        table.add_row(e.param.name, e.param.op, f"{significant(e.value):g}",
                      f"[{significant(e.low):g}, {significant(e.high):g}]", "yes" if e.identified else e.note)  # fmt: skip
    console.print(table)


def _export(args: argparse.Namespace, console: Console) -> int:
    from sim2real.api import export

    check_output(args.out, "--out")
    result = export(args.model, args.format, args.out, args.config, check_steps=args.check_steps,
                    trust_source=args.trust_source)  # fmt: skip
    console.print(
        f"wrote {result.path} ({result.format}); on {result.observations:,} recorded observations it matches "
        f"predict within {result.max_abs_difference:.1e}",
        soft_wrap=True,
    )
    return 0


def _evaluation_options(
    parser: argparse.ArgumentParser, config_default: str, episodes_default: int | None, episodes_help: str
) -> None:
    """The options evaluate and sweep share: which config, how many episodes, seed, copies, trust."""
    parser.add_argument("--config", type=Path, help=f"config YAML (default: the {config_default})")
    parser.add_argument("--episodes", type=_positive, default=episodes_default, help=episodes_help)
    parser.add_argument("--seed", type=_non_negative, default=0, help="evaluation seed (default: 0)")
    parser.add_argument("--n-envs", type=_positive, default=16, help="env copies stepped together (default: 16)")
    parser.add_argument("--trust-source", action="store_true", help=TRUST_HELP)


def parse_sweep_param(text: str) -> SweepParam:
    """A ``--param`` value: a YAML mapping such as ``{quantity: body_mass, select: torso, scale: [0.5, 2], points: 7}``."""
    from sim2real.config import SweepParam

    return parse_param(text, SweepParam, "{quantity: body_mass, select: all, scale: [0.5, 2.0], points: 5}")


ParamT = TypeVar("ParamT", bound="BaseModel")


def parse_param(text: str, kind: type[ParamT], example: str) -> ParamT:
    """A ``--param`` value: a YAML mapping validated as ``kind`` (errors name the key and what is allowed)."""
    import yaml
    from pydantic import ValidationError

    from sim2real.config import parse_yaml

    try:
        data = parse_yaml(text)
    except yaml.YAMLError:
        raise Sim2RealError(f"--param {text!r}: not a YAML mapping") from None
    if not isinstance(data, dict):
        raise Sim2RealError(f"--param {text!r}: expected a mapping like {example}")
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown key (allowed: {', '.join(kind.model_fields)})"
            problems.append(f"{where}: {message}" if where else message)
        raise Sim2RealError(f"--param {text!r}: " + "; ".join(problems)) from None


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _finite(text: str) -> float:
    """A number option: no nan or inf (float() takes both, and neither means anything as a setting)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _command_line() -> str:
    program = sys.argv[0]
    launcher = ["sim2real"] if Path(program).name == "sim2real" else ["python", program]
    return f"cd {shlex.quote(os.getcwd())} && " + shlex.join([*launcher, *sys.argv[1:]])


def _train(args: argparse.Namespace, console: Console) -> int:
    from sim2real.config import load_config
    from sim2real.training import load_run_config, train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress_bar=false")
    if args.resume is not None:
        if args.config is not None:
            raise Sim2RealError("give either a CONFIG or --resume RUN_DIR (a resumed run uses its own config)")
        config = load_run_config(args.resume, overrides)
    else:
        config = load_config(args.config or _default_config(), overrides)
    if config.transfer is not None:
        raise Sim2RealError("this config has a transfer section: run it with `sim2real transfer`")
    result = train(config, command=_command_line(), resume=args.resume, console=console, trust_source=args.trust_source)
    _report(result, "", console)
    return 0


def _report(result: TrainResult, where: str, console: Console) -> None:
    console.print(
        f"trained {result.num_timesteps:,} steps{where} in {result.seconds:.0f} s; run folder: {result.run_dir}\n"
        f"inspect it with: tensorboard --logdir {result.run_dir}",
        soft_wrap=True,
    )


def _transfer(args: argparse.Namespace, console: Console) -> int:
    from sim2real.config import load_config
    from sim2real.training import load_run_config, train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress_bar=false")
    if args.resume is not None:
        if args.config is not None or args.source is not None or args.method or args.target:
            raise Sim2RealError("--resume RUN_DIR continues a run with its own config, source and method")
        config = load_run_config(args.resume, overrides)
        if config.transfer is None:
            raise Sim2RealError(f"{args.resume}: not a transfer run; continue it with `sim2real train --resume`")
    else:
        path = args.config or _default_config()
        if args.method:
            overrides.append(f"transfer.method={args.method}")
        if args.target:
            overrides.append(f"transfer.target={args.target}")
        config = load_config(path, overrides)
        if config.transfer is None:  # no transfer section and no --method/--target: the default method
            config = load_config(path, [*overrides, "transfer.method=finetune"])
    result = train(
        config,
        command=_command_line(),
        resume=args.resume,
        console=console,
        source=args.source,
        trust_source=args.trust_source,
    )
    _report(result, f" on {config.training_domain_name()}", console)
    return 0


def check_output(path: Path | None, flag: str, folder: bool = False) -> None:
    """Refuses an output path that cannot be written before any work starts (not after an evaluation ran).

    It must not be a file where a folder goes or a folder where a file goes, each name must fit the file
    system, and the nearest folder on it that exists must be one this user can write in.
    """
    if path is None:
        return
    where = f"{flag} {path}"
    for part in path.parts:
        if len(part.encode()) > 255:
            raise Sim2RealError(f"{where}: the name '{part[:20]}...' is longer than a file name can be (255 bytes)")
    if path.exists() and path.is_dir() != folder:
        raise Sim2RealError(f"{where}: is a {'file' if folder else 'folder'}; give a {'folder' if folder else 'file'}")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if existing != path.absolute() and not existing.is_dir():
        raise Sim2RealError(f"{where}: {existing} is a file, so nothing can be written under it")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK | os.X_OK):
        raise Sim2RealError(f"{where}: cannot write in {existing if existing.is_dir() else existing.parent}")


def _evaluate(args: argparse.Namespace, console: Console) -> int:
    from sim2real.api import evaluate
    from sim2real.evaluation import print_results, write_results

    check_output(args.json, "--json")
    check_output(args.csv, "--csv")

    results = evaluate(args.model, args.config, domains=args.domain, episodes=args.episodes, seed=args.seed,
                       deterministic=not args.stochastic, n_envs=args.n_envs, trust_source=args.trust_source)  # fmt: skip
    print_results(results, console)
    meta = {"model": str(_model_zip(args.model)), "seed": args.seed, "deterministic": not args.stochastic}
    write_results(results, meta, json_path=args.json, csv_path=args.csv)
    return 0


def _model_zip(path: Path) -> Path:
    from sim2real.runs import RunFolder

    return RunFolder.of_model(path)[0]


def _sweep(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from sim2real.api import model_labels, sweep
    from sim2real.evaluation.sweep import log_sweep, write_sweep
    from sim2real.runs import RunFolder

    params = [parse_sweep_param(text) for text in args.param]
    check_output(args.out, "--out", folder=True)
    check_output(args.logdir, "--logdir", folder=True)
    labels = model_labels(args.models)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("sweeping", total=None)
        result = sweep(args.models, params, args.config, domain=args.domain, episodes=args.episodes, seed=args.seed,
                       n_envs=args.n_envs, trust_source=args.trust_source,
                       progress=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    first = args.models[0]
    default_root = first if first.is_dir() and len(args.models) == 1 else Path("sweeps")
    out = args.out or (default_root / ("sweeps" if default_root is first else "") / result.tag())
    paths = write_sweep(result, out)
    for index, path in enumerate(args.models):
        if args.logdir is not None:
            log_sweep(result, index, args.logdir / labels[index].replace("/", "_"))
        elif path.is_dir():
            log_sweep(result, index, RunFolder(path).tensorboard)
    _print_sweep(result, console)
    console.print(f"wrote {paths['csv']}, {paths['json']} and {paths['png']}", soft_wrap=True)
    return 0


def _print_sweep(result: Any, console: Console) -> None:
    from rich.table import Table

    if not console.is_terminal:
        console.width = max(console.width, 130)
    table = Table(title=f"Sweep: mean return ({result.episodes} episodes per point)")
    for param in result.params:
        table.add_column(param.label(), justify="right")
    for model in result.models:
        table.add_column(model.label, justify="right")
    for index, point in enumerate(result.points()):
        table.add_row(*(f"{v:g}" for v in point), *(f"{m.results[index].mean_reward:.1f}" for m in result.models))
    console.print(table)


def _compare(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from sim2real.api import compare
    from sim2real.evaluation.scorecard import header, rows, write_scorecard

    check_output(args.out, "--out", folder=True)

    card = compare(args.runs, threshold=args.threshold, threshold_fraction=args.threshold_fraction, seed=args.seed,
                   reference=args.reference, skip_unreadable=args.skip_unreadable)  # fmt: skip
    if not console.is_terminal:
        console.width = max(console.width, 160)
    table = Table(title="Transfer scorecard (IQM over seeds, [95% CI])")
    for column in header(card):
        table.add_column(column, justify="left" if column in ("target", "method") else "right")
    for row in rows(card):
        table.add_row(*row, style="red" if "negative transfer" in row[1] else None)
    console.print(table)
    err = Console(stderr=True)
    for note in card.notes:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    parents = [r.path.parent.parent for r in card.runs]
    out = args.out or Path(os.path.commonpath([str(p) for p in parents])) / "scorecard"
    paths = write_scorecard(card, out)
    console.print(
        f"wrote {paths['md']}, {paths['json']}, {paths['png']}; tensorboard --logdir {paths['tb']}", soft_wrap=True
    )
    return 0


def _study(args: argparse.Namespace, console: Console) -> int:
    from sim2real.config import load_study
    from sim2real.study import plan_study, study_lock
    from sim2real.study.backends import execute, make_backend
    from sim2real.study.report import write_report

    file = Path(args.config or _default_config(DEFAULT_STUDY))
    check_output(args.output, "--output", folder=True)
    plan = plan_study(file, load_study(file, args.overrides), args.output)
    counts = Counter(plan.status.values())
    console.print(
        f"study {plan.folder}: {len(plan.jobs)} jobs; {counts['done']} done, {counts['resume']} to resume, "
        f"{counts['new'] + counts['restart']} to run",
        soft_wrap=True,
        highlight=False,
    )
    if args.dry_run:
        for job in plan.jobs:
            status = plan.status[job.name]
            step = f" from step {plan.resume_step[job.name]:,}" if status == "resume" else ""
            where = Path(job.folder).relative_to(plan.folder)
            console.print(f"  {status:>7}{step}: {job.name} -> {where}", soft_wrap=True, highlight=False)
        return 0
    failed: dict[str, str] = {}
    if plan.pending():
        backend = make_backend(args.backend, args.workers, args.address)
        try:
            with study_lock(plan.folder):
                # Planned before the lock, so a bad study fails without touching the folder; planned again
                # under it, so what another study process did meanwhile counts.
                plan = plan_study(file, load_study(file, args.overrides), args.output)
                started = time.perf_counter()
                failed = execute(plan, backend, console)
                console.print(
                    f"ran {len(plan.pending())} jobs in {time.perf_counter() - started:,.0f} s", highlight=False
                )
        finally:
            backend.close()
    paths = write_report(plan)
    console.print(f"report: {paths['md']} (tensorboard --logdir {plan.folder})", soft_wrap=True, highlight=False)
    if failed:
        first, error = next(iter(failed.items()))
        raise Sim2RealError(f"{len(failed)} of {len(plan.jobs)} jobs failed; first: {first}: {error}")
    return 0


def _inspect(args: argparse.Namespace, console: Console) -> int:
    from sim2real.transfer.inspect import inspect_model

    inspect_model(args.model, console)
    return 0


def flag_spelling(name: str, value: object) -> str:
    """How the command line passes a library argument that an error names: ``--resume RUN``, ``--trust-source``."""
    flag = FLAGS.get(name)
    if flag is None:
        return python_spelling(name, value)
    return flag if value is None or isinstance(value, bool) else f"{flag} {value}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: ``sys.argv[1:]``) and returns the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    err = Console(stderr=True)

    default_show = warnings.showwarning

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NoEffectWarning):
            err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
        else:
            default_show(message, category, filename, lineno, file, line)

    # catch_warnings restores the caller's filters and showwarning afterwards (main() may run in-process).
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        warnings.simplefilter("once", NoEffectWarning)
        return _run(args, console, err)


def _run(args: argparse.Namespace, console: Console, err: Console) -> int:
    try:
        if args.command == "train":
            return _train(args, console)
        if args.command == "transfer":
            return _transfer(args, console)
        if args.command == "inspect":
            return _inspect(args, console)
        if args.command == "export":
            return _export(args, console)
        if args.command == "record":
            return _record(args, console)
        if args.command == "identify":
            return _identify(args, console)
        if args.command == "evaluate":
            return _evaluate(args, console)
        if args.command == "sweep":
            return _sweep(args, console)
        if args.command == "compare":
            return _compare(args, console)
        if args.command == "study":
            return _study(args, console)
    except Sim2RealError as error:
        err.print(f"[red]error:[/red] {error.render(flag_spelling)}", highlight=False, soft_wrap=True)
        return 2
    except OSError as error:
        # Disk full, permissions, a file removed under us: the OS's words, on one line.
        where = f"{error.filename}: " if error.filename else ""
        err.print(f"[red]error:[/red] {where}{error.strerror or error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130
    return 2


def run_train_script(env_dir: str, argv: Sequence[str] | None = None) -> int:
    """``sim2real train`` with ``configs/<env_dir>/nominal.yaml`` as the default config (for scripts/)."""
    args = list(sys.argv[1:] if argv is None else argv)
    config_given = bool(args) and not args[0].startswith("-")
    default = Path(__file__).resolve().parents[1] / "configs" / env_dir / "nominal.yaml"
    if not default.is_file():
        default = Path("configs") / env_dir / "nominal.yaml"
    return main(["train", *([] if config_given or "--resume" in args else [str(default)]), *args])


if __name__ == "__main__":
    raise SystemExit(main())
