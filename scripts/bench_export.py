"""Per-call latency of an exported policy against ``model.predict``, as a robot's control loop calls it: one raw
observation in, one action out (normalization included on both sides).

    python scripts/bench_export.py runs/inverted_double_pendulum_v5/nominal/seed_0 [--calls 5000]

Exports the run's policy as ONNX and TorchScript (``sim2real export``), then times, interleaved in rounds so
that machine noise hits every side alike: stable-baselines3's ``predict`` after sim2real's normalization,
onnxruntime on the ONNX file, and the TorchScript module. Prints the median and 99th percentile per call and
the speed-up of each exported form over ``predict``, and writes them to ``benchmarks/results/export_latency.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results import command_line, write_results

from sim2real.api import export
from sim2real.deploy import latency, load_exported, record_observations
from sim2real.evaluation.batched import ObservationNormalizer
from sim2real.modelfile import read_model
from sim2real.models import load_policy
from sim2real.training import load_run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder")
    parser.add_argument("--calls", type=int, default=5000, help="calls per side and round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/export_latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a control loop's one core; predict and TorchScript alike

    config = load_run_config(args.run)
    model, _ = load_policy(config, args.run)
    normalizer = ObservationNormalizer.from_state(read_model(args.run).normalization)
    out = Path("/tmp") / f"bench_export_{args.run.name}"
    out.mkdir(exist_ok=True)
    onnx = load_exported(export(args.run, "onnx", out / "policy.onnx").path, "onnx")
    script = load_exported(export(args.run, "torchscript", out / "policy.pt").path, "torchscript")
    observation = record_observations(model, config, normalizer, 1)[:1]

    def predict(obs: np.ndarray) -> np.ndarray:
        return model.predict(normalizer(obs) if normalizer else obs, deterministic=True)[0]

    sides = {"predict": predict, "onnxruntime": onnx, "torchscript": script}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, call in sides.items():
            times[name].append(latency(call, observation, args.calls))
    summary = {name: {"median_us": float(np.median([m for m, _ in rounds])), "p99_us": float(np.median([p for _, p in rounds]))}
               for name, rounds in times.items()}  # fmt: skip
    base = summary["predict"]["median_us"]
    for name, row in summary.items():
        row["speedup_vs_predict"] = base / row["median_us"]
        print(f"{name:<12} median {row['median_us']:8.1f} us   p99 {row['p99_us']:8.1f} us   "
              f"{row['speedup_vs_predict']:.1f}x predict")  # fmt: skip
    write_results(args.json, {
        "command": command_line(),
        "run": str(args.run), "env": config.env, "net_arch": list(config.algo.net_arch),
        "calls_per_round": args.calls, "rounds": args.rounds, "torch_threads": 1, "latency": summary,
    })  # fmt: skip
    print(f"wrote {args.json}")


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """None: the latency is measured and reported, with no goal (the exported actions' agreement with
    ``predict`` is checked by every export, not here)."""
    return {}


if __name__ == "__main__":
    main()
