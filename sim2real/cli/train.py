"""``sim2real train`` and ``sim2real transfer``: a run folder from a config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from sim2real.cli.options import DEFAULT_CONFIG, add_set, add_trust_source, command_line, default_config
from sim2real.config import TRANSFER_METHODS
from sim2real.errors import Sim2RealError

if TYPE_CHECKING:
    from sim2real.training import TrainResult


TRAIN_DESCRIPTION = "Train a policy on a config's source domain, then evaluate it on the source and every target."


def add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a source policy and evaluate it on the source and every target",
        description=TRAIN_DESCRIPTION,
    )
    _train_arguments(train, DEFAULT_CONFIG)


def train_script_parser(env_dir: str) -> argparse.ArgumentParser:
    """``sim2real train`` as a script of its own (scripts/train_<env_dir>.py): the script's name in its usage,
    ``configs/<env_dir>/nominal.yaml`` as the default config."""
    parser = argparse.ArgumentParser(description=TRAIN_DESCRIPTION)
    _train_arguments(parser, f"configs/{env_dir}/nominal.yaml")
    return parser


def _train_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("config", nargs="?", default=None, help=f"config YAML (default: {default})")
    add_set(parser, "train.total_timesteps=20000")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    add_trust_source(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train, default_config=default)


def add_transfer(commands: Any) -> None:
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
    add_set(transfer, "transfer.freeze.layers=2")
    transfer.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a transfer run")
    add_trust_source(transfer)
    transfer.add_argument("--no-progress", action="store_true", help="no progress bar")
    transfer.set_defaults(run=run_transfer)


def run_train(args: argparse.Namespace, console: Console) -> int:
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
        config = load_config(args.config or default_config(args.default_config), overrides)
    if config.transfer is not None:
        raise Sim2RealError("this config has a transfer section: run it with `sim2real transfer`")
    result = train(config, command=command_line(), resume=args.resume, console=console, trust_source=args.trust_source)
    _report(result, "", console)
    return 0


def _report(result: TrainResult, where: str, console: Console) -> None:
    console.print(
        f"trained {result.num_timesteps:,} steps{where} in {result.seconds:.0f} s; run folder: {result.run_dir}\n"
        f"inspect it with: sim2real tensorboard {result.run_dir}",
        soft_wrap=True,
    )


def run_transfer(args: argparse.Namespace, console: Console) -> int:
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
        path = args.config or default_config()
        if args.method:
            overrides.append(f"transfer.method={args.method}")
        if args.target:
            overrides.append(f"transfer.target={args.target}")
        config = load_config(path, overrides)
        if config.transfer is None:  # no transfer section and no --method/--target: the default method
            config = load_config(path, [*overrides, "transfer.method=finetune"])
    result = train(
        config,
        command=command_line(),
        resume=args.resume,
        console=console,
        source=args.source,
        trust_source=args.trust_source,
    )
    _report(result, f" on {config.training_domain_name()}", console)
    return 0
