"""``sim2real record`` and ``sim2real identify``: trajectories written, and dynamics fitted to them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from sim2real.cli.options import (
    FOR_THIS_COMMAND,
    add_set,
    add_trust_source,
    check_output,
    command_line,
    default_config,
    non_negative,
    non_negative_float,
    parse_param,
    positive,
)
from sim2real.errors import Sim2RealError


def add_record(commands: Any) -> None:
    record = commands.add_parser(
        "record",
        help="roll a policy (or random actions) out on a domain and write its trajectories",
        description="Roll a policy, or uniform random actions for excitation, out on a domain and write every step "
        "(qpos, qvel, the action sent, observation, reward, episode) as .npz or .csv: the format that "
        "`sim2real identify` reads, and that a robot's logs are written in (docs/identification.md).",
    )
    record.add_argument("model", metavar="MODEL", help="run folder or model zip, or 'random' for random actions")
    record.add_argument("--config", type=Path, help="config YAML (default: the model's run config; for random: "
                        "the built-in InvertedDoublePendulum config)")  # fmt: skip
    add_set(record, "train.normalize=null", note=FOR_THIS_COMMAND)
    record.add_argument("--domain", default="source", metavar="NAME", help="domain to record on (default: source)")
    record.add_argument("--episodes", type=positive, default=10, help="episodes (default: 10)")
    record.add_argument("--out", type=Path, required=True, metavar="FILE", help="the recording (.npz or .csv)")
    record.add_argument("--seed", type=non_negative, default=0, help="seeds resets, actions and noise (default: 0)")
    record.add_argument("--stochastic", action="store_true", help="sample the policy's actions (more excitation)")
    record.add_argument("--noise", type=non_negative_float, default=0.0, metavar="STD",
                        help="Gaussian sensor noise on the recorded qpos, qvel and observation (default: 0)")  # fmt: skip
    record.add_argument("--latency", type=non_negative, default=0, metavar="STEPS",
                        help="control steps between a command being sent and applied (default: 0)")  # fmt: skip
    record.add_argument("--lag", type=non_negative_float, default=0.0, metavar="SECONDS",
                        help="the motor's first-order time constant, after the latency (default: 0)")  # fmt: skip
    add_trust_source(record)
    record.set_defaults(run=run_record)


def add_identify(commands: Any) -> None:
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
    add_set(identify, "'source.dynamics=[]'", note="(identified.yaml holds the overridden config)")
    identify.add_argument(
        "--param",
        action="append",
        required=True,
        metavar="SPEC",
        help="a quantity to fit as a YAML mapping, e.g. '{quantity: body_mass, select: torso, scale: [0.5, 3]}' "
        "(repeat for each)",
    )
    identify.add_argument("--horizon", type=positive, default=3, help="control steps per replay (default: 3)")
    identify.add_argument("--windows", type=positive, default=128, help="replay windows at most (default: 128)")
    identify.add_argument("--max-generations", type=positive, default=200, help="CMA-ES generations (default: 200)")
    identify.add_argument("--popsize", type=positive, help="candidates per generation (default: CMA-ES's)")
    identify.add_argument("--seed", type=non_negative, default=0, help="seeds the search (default: 0)")
    identify.add_argument("--threads", type=positive, help="rollout threads (default: the cores available)")
    identify.add_argument("--latency", type=non_negative, nargs="+", default=[0], metavar="STEPS",
                          help="candidate delays between a command and the motor, in control steps; each is fitted "
                          "and the best kept (default: 0)")  # fmt: skip
    identify.add_argument("--no-smooth", dest="smooth", action="store_false",
                          help="replay the recorded positions as they are; by default the sensor noise the recording "
                          "shows is estimated and taken out of them first (a clean recording is left as it is)")  # fmt: skip
    identify.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: identified/<FILE's name>)")
    identify.set_defaults(run=run_identify)


def run_record(args: argparse.Namespace, console: Console) -> int:
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
    if model is None:
        config = load_config(args.config or default_config(), args.overrides)
    else:
        config = run_config(model, args.config, args.overrides)
    trajectories = record(config, model_path=model, domain=args.domain, episodes=args.episodes, seed=args.seed,
                          deterministic=not args.stochastic, noise=args.noise, latency=args.latency, lag=args.lag,
                          trust_source=args.trust_source)  # fmt: skip
    trajectories.write(args.out)
    console.print(
        f"wrote {args.out}: {trajectories.episodes} episodes, {trajectories.steps:,} steps on {config.env} "
        f"({args.domain})",
        soft_wrap=True,
    )
    return 0


def run_identify(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from sim2real.config import IdentifyParam, load_config
    from sim2real.identification import identify, write_identification

    params = [parse_param(text, IdentifyParam, "{quantity: body_mass, select: all, scale: [0.5, 2.0]}")
              for text in args.param]  # fmt: skip
    out = args.out or Path("identified") / args.recording.stem
    check_output(out, "--out", folder=True)
    config = load_config(args.config or default_config(), args.overrides)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("identifying", total=args.max_generations * len(set(args.latency)))
        result = identify(args.recording, config, params, horizon=args.horizon, windows=args.windows, seed=args.seed,
                          max_generations=args.max_generations, popsize=args.popsize, threads=args.threads,
                          latency=args.latency, smooth=args.smooth,
                          on_generation=lambda *_: progress.advance(task))  # fmt: skip
    paths = write_identification(result, out, command=command_line())
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
