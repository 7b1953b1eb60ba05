"""``sim2real inspect`` and ``sim2real export``: a saved model's layer groups, and the model for a robot."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from sim2real.cli.options import FOR_THIS_COMMAND, add_set, add_trust_source, check_output, positive


def add_inspect(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="list a model's layer groups with shapes, sizes and frozen state",
        description="List the layer groups of a saved model (a run folder or a zip), read weights-only.",
    )
    inspect.add_argument("model", type=Path, metavar="MODEL", help="run folder or model zip")
    inspect.set_defaults(run=run_inspect)


def add_export(commands: Any) -> None:
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
    add_set(export, "train.normalize=null", note=FOR_THIS_COMMAND)
    export.add_argument("--check-steps", type=positive, default=1000, help="recorded observations to check on")
    add_trust_source(export)
    export.set_defaults(run=run_export)


def run_inspect(args: argparse.Namespace, console: Console) -> int:
    from sim2real.transfer.inspect import inspect_model

    inspect_model(args.model, console)
    return 0


def run_export(args: argparse.Namespace, console: Console) -> int:
    from sim2real.api import export, run_config

    check_output(args.out, "--out")
    config = run_config(args.model, args.config, args.overrides)
    result = export(args.model, args.format, args.out, config, check_steps=args.check_steps,
                    trust_source=args.trust_source)  # fmt: skip
    console.print(
        f"wrote {result.path} ({result.format}); on {result.observations:,} recorded observations it matches "
        f"predict within {result.max_abs_difference:.1e}",
        soft_wrap=True,
    )
    return 0
