"""Side by side: ``sim2real identify`` against MuJoCo's own ``mujoco.sysid`` on the same recordings (issue 25).

    pip install colorama tabulate plotly     # mujoco.sysid's extra (mujoco[sysid]): without it the module is empty
    python scripts/bench_sysid.py --json benchmarks/results/sysid_comparison.json

InvertedDoublePendulum-v5, ``configs/inverted_double_pendulum/identify.yaml`` (target ``hidden``): per seed, 10
episodes of uniform random actions, clean and with sensor noise 0.01 (``scripts/bench_identify.py``'s
recordings). Both fit the same 4 quantities in the same ranges, from the same start point (scale 1, the range's
centre for absolute values), on the same replay windows (3 control steps from each recorded state, at most 128):

- sim2real: ``identify`` with its defaults (the sensor noise the recording shows taken out of its positions,
  CMA-ES, the cluster-robust intervals widened by the search's tolerance);
- mujoco.sysid: one sequence per window, starting from the recorded state, its default residual (each channel
  divided by its norm in the sequence), Gauss-Newton with Levenberg-Marquardt and finite differences
  (``optimize(optimizer="mujoco")``), and its intervals (``calculate_intervals``: ``s^2 (J^T J)^-1``, i.i.d.
  residuals). Each quantity is written into the model through an ``MjSpec`` modifier, compiled per evaluation,
  as mujoco.sysid does.

Per method and condition: each parameter's median and largest error over the seeds, the time per fit (2 threads
each), and in how many fits the 95% interval holds the truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import yaml
from results import command_line, goal, write_results

from sim2real.config import IdentifyParam, load_config
from sim2real.identification import identify, read_trajectories, record
from sim2real.identification.fitting import cut_windows

CONFIG = "configs/inverted_double_pendulum/identify.yaml"
PARAMS = {
    "body_mass/pole+pole2": "{quantity: body_mass, select: [pole, pole2], scale: [0.5, 3.0]}",
    "actuator_gear/all": "{quantity: actuator_gear, select: all, scale: [0.3, 1.5]}",
    "joint_damping/hinge+hinge2": "{quantity: joint_damping, select: [hinge, hinge2], set: [0.0, 1.0]}",
    "joint_frictionloss/hinge+hinge2": "{quantity: joint_frictionloss, select: [hinge, hinge2], set: [0.0, 0.5]}",
}
TRUTH = {"body_mass/pole+pole2": 1.8, "actuator_gear/all": 0.4, "joint_damping/hinge+hinge2": 0.3,
         "joint_frictionloss/hinge+hinge2": 0.0}  # fmt: skip
CONDITIONS = {"clean": 0.0, "noise": 0.01}
HORIZON, WINDOWS, THREADS = 3, 128, 2
# Errors below this are both exact: below the finite-difference steps either method's last iterations take.
EXACT = 1e-6


def error_of(name: str, value: float) -> float:
    """Relative error; for a true value of zero, as a share of the search range (as bench_identify's)."""
    truth = TRUTH[name]
    if truth:
        return abs(value - truth) / abs(truth)
    low, high = IdentifyParam.model_validate(yaml.safe_load(PARAMS[name])).bounds
    return abs(value - truth) / (high - low)


def ours(recording: Path, seed: int) -> dict[str, Any]:
    params = [IdentifyParam.model_validate(yaml.safe_load(spec)) for spec in PARAMS.values()]
    began = time.perf_counter()
    result = identify(recording, load_config(CONFIG), params, seed=seed, threads=THREADS)
    seconds = time.perf_counter() - began
    return {"seconds": seconds,
            "values": {e.param.name: e.value for e in result.fit.estimates},
            "intervals": {e.param.name: [e.low, e.high] for e in result.fit.estimates}}  # fmt: skip


def theirs(recording: Path, seed: int) -> dict[str, Any]:
    from mujoco import sysid

    xml = gym.make("InvertedDoublePendulum-v5").unwrapped.fullpath  # type: ignore[attr-defined]
    nominal = mujoco.MjModel.from_xml_path(xml)
    frame_skip = 5
    masses = {b: float(nominal.body(b).mass[0]) for b in ("pole", "pole2")}
    gear = float(nominal.actuator_gear[0, 0])

    def poles(spec: Any, p: Any) -> None:
        for body, mass in masses.items():
            sysid.model_modifier._infer_inertial(spec, body)  # the body's inertia from its geoms, made explicit
            b = spec.body(body)
            b.inertia = b.inertia * (mass * p.value[0] / b.mass)
            b.mass = mass * p.value[0]

    def motor(spec: Any, p: Any) -> None:
        spec.actuators[0].gear[0] = gear * p.value[0]

    def damping(spec: Any, p: Any) -> None:
        for joint in ("hinge", "hinge2"):
            spec.joint(joint).damping[0] = p.value[0]

    def friction(spec: Any, p: Any) -> None:
        for joint in ("hinge", "hinge2"):
            spec.joint(joint).frictionloss = p.value[0]

    params = sysid.ParameterDict()
    for (name, spec), modifier in zip(PARAMS.items(), (poles, motor, damping, friction), strict=True):
        param = IdentifyParam.model_validate(yaml.safe_load(spec))
        low, high = param.bounds
        start = 1.0 if param.op == "scale" else (low + high) / 2  # identify's start point
        params.add(sysid.Parameter(name, start, low, high, modifier=modifier))
    t = read_trajectories(recording)
    windows = cut_windows(t, nominal, frame_skip, HORIZON, WINDOWS)
    dt = float(nominal.opt.timestep)
    names = [f"{nominal.joint(j).name}_qpos" for j in range(nominal.njnt)] + [
        f"{nominal.joint(j).name}_qvel" for j in range(nominal.njnt)
    ]
    inits, controls, measured, labels = [], [], [], []
    for start in windows.starts:
        inits.append(sysid.create_initial_state(nominal, t.qpos[start], t.qvel[start]))
        held = np.repeat(t.action[start : start + HORIZON], frame_skip, axis=0)  # held for frame_skip steps
        held = np.vstack([held, held[-1:]])  # mujoco.sysid drops the last control sample
        controls.append(sysid.TimeSeries(np.arange(len(held)) * dt, held))
        times = np.arange(1, HORIZON + 1) * frame_skip * dt
        states = np.hstack([t.qpos[start + 1 : start + HORIZON + 1], t.qvel[start + 1 : start + HORIZON + 1]])
        measured.append(sysid.TimeSeries.from_names(times, states, nominal, names))
        labels.append(f"window_{start}")
    sequences = sysid.ModelSequences("idp", mujoco.MjSpec.from_file(xml), labels, inits, controls, measured,
                                     allow_missing_sensors=True)  # fmt: skip
    residual = sysid.build_residual_fn(models_sequences=[sequences], n_threads=THREADS)
    began = time.perf_counter()
    found, outcome = sysid.optimize(params, residual, optimizer="mujoco", verbose=False)
    seconds = time.perf_counter() - began
    at_optimum, _, _ = residual(found.as_vector(), found)
    _, half = sysid.calculate_intervals(at_optimum, outcome.jac)
    values = {name: float(found[name].value[0]) for name in PARAMS}
    return {"seconds": seconds, "values": values,
            "intervals": {n: [values[n] - float(h), values[n] + float(h)] for n, h in zip(PARAMS, half, strict=True)}}  # fmt: skip


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": {"median": float(np.median([r["seconds"] for r in runs])),
                                       "max": float(np.max([r["seconds"] for r in runs]))}}  # fmt: skip
    for name in PARAMS:
        errors = [error_of(name, r["values"][name]) for r in runs]
        covered = [r["intervals"][name][0] <= TRUTH[name] <= r["intervals"][name][1] for r in runs]
        out[name] = {"median_error": float(np.median(errors)), "max_error": float(np.max(errors)),
                     "interval_covers_truth": f"{sum(covered)}/{len(covered)}"}  # fmt: skip
    return out


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """Issue 25: sim2real at least as accurate (its largest median error over the parameters no larger than
    mujoco.sysid's) and as fast (its median time per fit no longer) in each condition."""
    verdicts: dict[str, Any] = {}
    for condition, methods in data["conditions"].items():
        worst = {m: max(methods[m][n]["median_error"] for n in PARAMS) for m in ("sim2real", "mujoco.sysid")}
        verdicts[f"{condition}: as accurate as mujoco.sysid"] = goal(
            f"sim2real's largest median error over the parameters, against mujoco.sysid's (or {EXACT:.0e}: both exact)",
            worst["sim2real"], at_most=max(worst["mujoco.sysid"], EXACT), unit="%",
        )  # fmt: skip
        times = {m: methods[m]["seconds"]["median"] for m in ("sim2real", "mujoco.sysid")}
        verdicts[f"{condition}: as fast as mujoco.sysid"] = goal(
            "sim2real's median seconds per fit, against mujoco.sysid's", times["sim2real"],
            at_most=times["mujoco.sysid"], unit="s",
        )  # fmt: skip
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/sysid_comparison.json"))
    args = parser.parse_args()
    config = load_config(CONFIG)
    conditions: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for condition, noise in CONDITIONS.items():
            runs: dict[str, list[dict[str, Any]]] = {"sim2real": [], "mujoco.sysid": []}
            for seed in range(args.seeds):
                recording = Path(folder) / f"{condition}_{seed}.npz"
                record(config, model_path=None, domain="hidden", episodes=args.episodes, seed=seed,
                       deterministic=False, noise=noise).write(recording)  # fmt: skip
                for method, fit in (("sim2real", ours), ("mujoco.sysid", theirs)):
                    run = fit(recording, seed)
                    runs[method].append(run)
                    print(f"{condition} seed {seed} {method}: {run['seconds']:.1f} s, errors "
                          + ", ".join(f"{n} {100 * error_of(n, v):.2f}%" for n, v in run["values"].items()), flush=True)  # fmt: skip
            conditions[condition] = {m: {**summarize(r), "runs": r} for m, r in runs.items()}
    data = {"command": command_line(), "config": CONFIG, "seeds": args.seeds, "episodes": args.episodes,
            "truth": TRUTH, "conditions": conditions}  # fmt: skip
    write_results(args.json, {**data, "goals": goals(data)})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
