"""``sim2real record``, ``sim2real identify`` and ``sim2real adapt``: trajectories written, dynamics fitted to them,
and the loop that does both and fine-tunes on the target within a budget of target steps."""

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


def add_adapt(commands: Any) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="the sim-to-real loop: record, identify, train in simulation, fine-tune on the target, on a budget",
        description="From a source, spend a budget of target steps in the order that pays best: record the "
        "source on the target (its zero-shot return), identify the dynamics from that recording, train in "
        "simulation around the estimate (free), start from the better of the source and the simulation-trained "
        "policy on the target, and fine-tune it there, guarded, with what is left (docs/adapt.md). Each stage "
        "writes its part of one folder; run the same command again to resume a stopped loop.",
    )
    adapt.add_argument("source", type=Path, metavar="SOURCE", help="the source's run folder or model zip")
    adapt.add_argument("--config", type=Path, help="config YAML with the target and its adapt section "
                       "(default: the source's run config)")  # fmt: skip
    add_set(adapt, "adapt.simulation_steps=50000")
    adapt.add_argument("--target", metavar="NAME", help="the target to adapt to (default: adapt.target)")
    adapt.add_argument("--budget", type=positive, metavar="STEPS", help="target steps in all (default: adapt.budget)")
    adapt.add_argument("--recording", type=Path, metavar="FILE",
                       help="the target's recording (.npz or .csv), instead of recording the source there")  # fmt: skip
    adapt.add_argument("--seed", type=non_negative, default=0, help="seeds every stage (default: 0)")
    adapt.add_argument("--out", type=Path, metavar="DIR",
                       help="the loop's folder (default: <root>/<env>/<experiment>/<target>/adapt/seed_<n>)")  # fmt: skip
    add_trust_source(adapt)
    adapt.set_defaults(run=run_adapt)


def run_adapt(args: argparse.Namespace, console: Console) -> int:
    from sim2real.adapt import adapt
    from sim2real.api import run_config
    from sim2real.config import AdaptConfig

    if not args.source.exists():
        raise Sim2RealError(f"{args.source}: no such run folder or model zip")
    check_output(args.out, "--out", folder=True)
    if args.recording is not None and not args.recording.is_file():
        raise Sim2RealError(f"--recording {args.recording}: no such file")
    config = run_config(args.source, args.config, args.overrides)
    chosen = {name: value for name, value in (("target", args.target), ("budget", args.budget)) if value is not None}
    settings = AdaptConfig.model_validate({**(config.adapt or AdaptConfig()).model_dump(exclude_unset=True), **chosen})
    result = adapt(config, args.source, settings=settings, seed=args.seed, out=args.out, recording=args.recording,
                   console=console, trust_source=args.trust_source, command=command_line())  # fmt: skip
    console.print(f"wrote {result.folder}", soft_wrap=True)
    return 0


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
