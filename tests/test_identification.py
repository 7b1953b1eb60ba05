"""System identification: recordings (format, realism, bad files) and fits (recovery, degeneracy, flatness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sim2real.config import IdentifyParam, load_config, parse_config
from sim2real.identification import Trajectories, identify, read_trajectories, record, write_identification
from tests.conftest import assert_one_line_error

# A target whose values identification is not told: heavier poles, a weaker motor, more hinge damping.
TRUTH = {"poles": 1.3, "gear": 0.8, "damping": 0.2}


def _config_file(folder: Path) -> Path:
    data = {
        "env": "InvertedDoublePendulum-v5",
        "targets": {
            "hidden": {
                "dynamics": [
                    {"quantity": "body_mass", "select": ["pole", "pole2"], "scale": TRUTH["poles"]},
                    {"quantity": "actuator_gear", "select": "all", "scale": TRUTH["gear"]},
                    {"quantity": "joint_damping", "select": ["hinge", "hinge2"], "set": TRUTH["damping"]},
                ]
            },
            "heavy_strong": {
                "dynamics": [
                    {"quantity": "body_mass", "select": "all", "scale": 1.5},
                    {"quantity": "actuator_gear", "select": "all", "scale": 1.5},
                ]
            },
        },
        "algo": {"name": "ppo", "net_arch": [16]},
        "run": {"root": str(folder / "runs")},
    }
    path = folder / "idp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A config and a random-action recording on its hidden target (random actions excite every joint)."""
    folder = tmp_path_factory.mktemp("identification")
    config_path = _config_file(folder)
    config = load_config(config_path)
    recording = folder / "hidden.npz"
    record(config, model_path=None, domain="hidden", episodes=40, seed=3).write(recording)
    return {"folder": folder, "config_path": config_path, "config": config, "recording": recording}


PARAMS = [
    "{quantity: body_mass, select: [pole, pole2], scale: [0.5, 2.0]}",
    "{quantity: actuator_gear, select: all, scale: [0.5, 1.5]}",
    "{quantity: joint_damping, select: [hinge, hinge2], set: [0.0, 1.0]}",
]


def _params(*specs: str) -> list[IdentifyParam]:
    return [IdentifyParam.model_validate(yaml.safe_load(spec)) for spec in specs]


# ------------------------------------------------------------------------------------------- recordings


def test_a_recording_holds_every_step_with_its_header(setup: dict[str, Any]) -> None:
    t = read_trajectories(setup["recording"])
    assert t.episodes == 40
    assert t.qpos.shape == (t.steps, 3) and t.qvel.shape == (t.steps, 3) and t.action.shape == (t.steps, 1)
    assert t.observation is not None and t.observation.shape == (t.steps, 9)
    assert t.header["env"] == "InvertedDoublePendulum-v5"
    assert t.header["domain"] == "hidden" and t.header["produced_by"] == "random actions"
    assert t.header["control_period"] == pytest.approx(0.05)
    assert t.header["format"] == "sim2real.trajectories"


def test_the_same_seed_records_the_same_file(setup: dict[str, Any], tmp_path: Path) -> None:
    again = record(setup["config"], model_path=None, domain="hidden", episodes=40, seed=3)
    first = read_trajectories(setup["recording"])
    for name, value in first.arrays().items():
        np.testing.assert_array_equal(value, again.arrays()[name])


def test_csv_and_npz_hold_the_same_table(setup: dict[str, Any], tmp_path: Path) -> None:
    t = read_trajectories(setup["recording"])
    t.write(tmp_path / "same.csv")
    back = read_trajectories(tmp_path / "same.csv")
    assert back.header["env"] == t.header["env"]
    for name, value in t.arrays().items():
        np.testing.assert_array_equal(value, back.arrays()[name])


def test_a_recording_from_plain_arrays_without_header_or_observations(setup: dict[str, Any], tmp_path: Path) -> None:
    """What a robot user writes: episode, qpos, qvel and action only."""
    t = read_trajectories(setup["recording"])
    Trajectories(episode=t.episode, qpos=t.qpos, qvel=t.qvel, action=t.action).write(tmp_path / "robot.csv")
    back = read_trajectories(tmp_path / "robot.csv")
    assert back.observation is None and back.reward is None
    np.testing.assert_array_equal(back.qvel, t.qvel)


def test_noise_and_latency_change_the_recording(setup: dict[str, Any]) -> None:
    clean = record(setup["config"], model_path=None, domain="hidden", episodes=2, seed=1)
    noisy = record(setup["config"], model_path=None, domain="hidden", episodes=2, seed=1, noise=0.01)
    assert noisy.header["noise"] == 0.01
    first = min(clean.steps, noisy.steps)
    difference = noisy.qpos[:first] - clean.qpos[:first]
    assert 0.003 < difference[:5].std() < 0.03  # sensor noise of std 0.01, not a different trajectory
    late = record(setup["config"], model_path=None, domain="hidden", episodes=2, seed=1, latency=1)
    assert late.header["latency"] == 1
    assert not np.array_equal(late.qpos[1:3], clean.qpos[1:3])  # the motor acts one step later


def test_a_recording_of_at_least_some_steps_goes_on_with_the_next_episodes(setup: dict[str, Any]) -> None:
    """``min_steps``: more episodes until the steps are there, the shorter recording's episodes first."""
    short = record(setup["config"], model_path=None, domain="hidden", episodes=2, seed=1)
    longer = record(setup["config"], model_path=None, domain="hidden", episodes=2, seed=1, min_steps=short.steps + 1)
    assert longer.steps > short.steps and longer.episodes == longer.header["episodes"] > 2
    np.testing.assert_array_equal(longer.qpos[: short.steps], short.qpos)


# ------------------------------------------------------------------------------------------- fits


def test_identification_recovers_the_hidden_values(setup: dict[str, Any]) -> None:
    result = identify(setup["recording"], setup["config"], _params(*PARAMS), seed=0)
    found = {e.param.quantity: e for e in result.fit.estimates}
    assert result.fit.converged
    assert found["body_mass"].value == pytest.approx(TRUTH["poles"], rel=0.02)
    assert found["actuator_gear"].value == pytest.approx(TRUTH["gear"], rel=0.02)
    assert found["joint_damping"].value == pytest.approx(TRUTH["damping"], rel=0.05)
    for estimate in result.fit.estimates:
        assert estimate.identified, estimate.note
        assert estimate.low <= estimate.value <= estimate.high
    assert result.fit.loss < 1e-4 * result.fit.loss_start
    # CMA-ES finds the basin; the Gauss-Newton polish then reaches the optimum of a clean recording: exact.
    assert result.fit.polish > 0
    assert found["actuator_gear"].value == pytest.approx(TRUTH["gear"], rel=1e-4)


def test_every_mass_with_the_motor_is_named_a_combination(setup: dict[str, Any], tmp_path: Path) -> None:
    """Scaling every mass and the gear together gives the same accelerations: the report says so."""
    recording = tmp_path / "heavy_strong.npz"
    record(setup["config"], model_path=None, domain="heavy_strong", episodes=40, seed=5).write(recording)
    params = _params("{quantity: body_mass, select: all, scale: [0.5, 2.5]}",
                     "{quantity: actuator_gear, select: all, scale: [0.5, 2.5]}",
                     "{quantity: joint_damping, select: all, scale: [0.2, 5.0]}")  # fmt: skip
    result = identify(recording, setup["config"], params, seed=0)
    assert result.fit.combinations, "the degenerate direction is reported"
    assert not any(e.identified for e in result.fit.estimates)
    values = {e.param.quantity: e.value for e in result.fit.estimates}
    # What is identified is the ratio, 1.5 / 1.5.
    assert values["actuator_gear"] / values["body_mass"] == pytest.approx(1.0, rel=0.02)
    out = tmp_path / "identified"
    write_identification(result, out)
    assert "Identified only in combination" in (out / "report.md").read_text()


def test_a_parameter_the_motion_does_not_touch_is_named_flat(setup: dict[str, Any]) -> None:
    """The pendulum has no contacts: friction cannot be identified from its motion."""
    params = _params(*PARAMS, "{quantity: geom_friction, select: all, set: [0.2, 2.0]}")
    with pytest.warns(UserWarning):  # friction between geoms that never touch: NoEffectWarning
        result = identify(setup["recording"], setup["config"], params, seed=0)
    *physics, friction = result.fit.estimates
    assert all(e.identified for e in physics)
    assert physics[1].value == pytest.approx(TRUTH["gear"], rel=0.02)
    assert not friction.identified and "not identifiable" in friction.note
    assert (friction.low, friction.high) == (0.2, 2.0)


def test_identified_yaml_is_a_config_with_the_estimate_as_source(setup: dict[str, Any], tmp_path: Path) -> None:
    result = identify(setup["recording"], setup["config"], _params(*PARAMS), seed=0)
    out = tmp_path / "found"
    paths = write_identification(result, out, command="sim2real identify ...")
    config = load_config(paths["identified.yaml"])
    assert config.env == "InvertedDoublePendulum-v5"
    assert config.run.experiment == "identified"
    assert "hidden" in config.targets  # everything else comes from the config it extends
    values = {c.quantity: c.scale if c.scale is not None else c.set for c in config.source.dynamics}
    assert values["actuator_gear"] == pytest.approx(TRUTH["gear"], rel=0.02)
    randomized = load_config(paths["identified_randomized.yaml"])
    drawn = {c.quantity: (c.scale or c.set) for c in randomized.source.dynamics}
    gear = drawn["actuator_gear"]
    assert gear.dist == "uniform" and gear.low <= TRUTH["gear"] * 1.02 and gear.high >= TRUTH["gear"] * 0.98
    report = json.loads(paths["report.json"].read_text())
    assert report["converged"] and report["command"] == "sim2real identify ..."
    assert {p["name"] for p in report["parameters"]} == {e.param.name for e in result.fit.estimates}
    assert paths["fit.png"].stat().st_size > 10_000
    assert any((out / "tb").iterdir())


# ------------------------------------------------------------------------------------------- command line


def test_record_and_identify_from_the_command_line(setup: dict[str, Any], tmp_path: Path, cli: Any) -> None:
    recording = tmp_path / "r.csv"
    done = cli("record", "random", "--config", str(setup["config_path"]), "--domain", "hidden", "--episodes", "40",
               "--seed", "3", "--out", str(recording))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "id"
    args = [a for spec in PARAMS for a in ("--param", spec)]
    done = cli("identify", str(recording), "--config", str(setup["config_path"]), *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "actuator_gear/all" in done.stdout
    assert (out / "identified.yaml").is_file() and (out / "report.md").is_file()


def _bad_recording(setup: dict[str, Any], tmp_path: Path, change: str) -> Path:
    t = read_trajectories(setup["recording"])
    path = tmp_path / "bad.npz"
    if change == "nan":
        t.qvel[5, 1] = np.nan
    if change == "dims":
        t.qpos = t.qpos[:, :2]
    if change == "single_rows":
        t.episode = np.arange(t.steps)
    if change == "interleaved":
        t.episode = t.episode.copy()
        t.episode[t.episode == 2] = 0  # episode 0's number comes back after episode 1
    if change == "observations_swapped":
        assert t.observation is not None
        t = t.observations_only()
        t.observation = t.observation[:, [0, 1, 2, 3, 4, 6, 5, 7, 8]]  # the hinges' velocities swapped
    if change == "empty":
        path.write_bytes(b"")
        return path
    if change == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip")
        return path
    t.write(path)
    return path


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("nan", "qvel holds NaN or inf (first at row 5)"),
        ("dims", "qpos has 2 columns, InvertedDoublePendulum-v5 has 3"),
        ("single_rows", "no complete step"),
        ("interleaved", "comes back at row"),
        ("observations_swapped", "the observation does not hold the env's layout"),
        ("empty", "not a readable recording"),
        ("garbage", "not a readable recording"),
    ],
)
def test_a_bad_recording_is_one_line_and_writes_nothing(
    setup: dict[str, Any], tmp_path: Path, cli: Any, change: str, needle: str
) -> None:
    path = _bad_recording(setup, tmp_path, change)
    out = tmp_path / "out"
    done = cli("identify", str(path), "--config", str(setup["config_path"]), "--param", PARAMS[1], "--out", str(out))
    assert_one_line_error(done, str(path), needle)
    assert not out.exists()


def test_a_recording_of_another_env_is_refused(setup: dict[str, Any], tmp_path: Path, cli: Any) -> None:
    other = tmp_path / "hopper.yaml"
    other.write_text(yaml.safe_dump({"env": "Hopper-v5", "algo": {"name": "ppo"}}))
    done = cli("identify", str(setup["recording"]), "--config", str(other), "--param",
               "{quantity: body_mass, select: torso, scale: [0.5, 2]}", "--out", str(tmp_path / "out"))  # fmt: skip
    assert_one_line_error(done, "recorded on InvertedDoublePendulum-v5, but the config's env is Hopper-v5")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("{quantity: body_mass, select: tail, scale: [0.5, 2]}", "unknown body 'tail'"),
        ("{quantity: body_mass, select: all, scale: [-1, 2]}", "body_mass/all scale [-1.0, 2.0]"),
        ("{quantity: body_weight, select: all, scale: [0.5, 2]}", "unknown quantity 'body_weight'"),
        ("{quantity: body_mass, select: all, scale: [2, 0.5]}", "low 2.0 must be below high 0.5"),
        ("{quantity: body_mass, select: all, scale: [0.5, 2], points: 3}", "points: unknown key"),
        ("{quantity: action_lag, set: [-0.01, 0.1]}", "action_lag is fitted in seconds, as set: with 0 <= low < high"),
        ("{quantity: sensor_offset, offset: [-0.1, 0.1]}", "sensor_offset is fitted as offset"),
        ("{quantity: sensor_offset, select: pole, offset: [-0.1, 0.1]}", "the model has no joint 'pole'"),
    ],
)
def test_a_bad_parameter_is_one_line_and_writes_nothing(
    setup: dict[str, Any], tmp_path: Path, cli: Any, param: str, needle: str
) -> None:
    out = tmp_path / "out"
    done = cli("identify", str(setup["recording"]), "--config", str(setup["config_path"]), "--param", param,
               "--out", str(out))  # fmt: skip
    assert_one_line_error(done, needle)
    assert not out.exists()


def test_a_fit_that_does_not_converge_writes_nothing(setup: dict[str, Any], tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    args = [a for spec in PARAMS for a in ("--param", spec)]
    done = cli("identify", str(setup["recording"]), "--config", str(setup["config_path"]), *args,
               "--max-generations", "2", "--out", str(out))  # fmt: skip
    assert_one_line_error(done, "did not converge in 2 generations", "--max-generations")
    assert not out.exists()


def test_record_refuses_an_unknown_domain_and_a_bad_suffix(setup: dict[str, Any], tmp_path: Path, cli: Any) -> None:
    base = ["record", "random", "--config", str(setup["config_path"]), "--episodes", "1"]
    assert_one_line_error(cli(*base, "--domain", "moon", "--out", str(tmp_path / "r.npz")), "no domain 'moon'")
    assert_one_line_error(cli(*base, "--out", str(tmp_path / "r.txt")), "a .npz or .csv file")
    assert not list(tmp_path.iterdir())


def test_a_randomized_source_is_refused(setup: dict[str, Any]) -> None:
    data = yaml.safe_load(setup["config_path"].read_text())
    data["source"] = {"dynamics": [{"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 1,
                                                                                          "high": 2}}]}  # fmt: skip
    config = parse_config(data, "randomized.yaml")
    from sim2real.errors import Sim2RealError

    with pytest.raises(Sim2RealError, match=r"randomized\.yaml: source: draws its dynamics"):
        identify(setup["recording"], config, _params(PARAMS[1]))


def test_the_latency_that_reproduces_the_motion_is_found_and_kept(setup: dict[str, Any], tmp_path: Path) -> None:
    """A recording whose motor acts one step late: among candidates 0, 1 and 2, identify keeps 1, and the
    identified domain delays its actions by one step."""
    recording = tmp_path / "late.npz"
    record(setup["config"], model_path=None, domain="hidden", episodes=40, seed=3, latency=1).write(recording)
    result = identify(recording, setup["config"], _params(*PARAMS), latency=(0, 1, 2), seed=0)
    assert result.latency == 1
    assert result.latency_losses[1] < 1e-3 * min(result.latency_losses[0], result.latency_losses[2])
    assert result.fit.estimates[1].value == pytest.approx(TRUTH["gear"], rel=0.02)
    paths = write_identification(result, tmp_path / "found")
    config = load_config(paths["identified.yaml"])
    assert config.source.reality_gap.action_latency is not None
    assert config.source.reality_gap.action_latency.steps == 1


def test_a_motor_lag_is_identified_with_the_model_and_written_as_a_reality_gap(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """A target whose motors lag (time constant 0.03 s, 0.6 of IDP's 0.05 s control period): action_lag is fitted
    beside the model's quantities, its estimate is within 5% with the others' still within theirs, and the
    identified domain has the lag as its reality gap (an interval of time constants, never below 0, in the
    randomized one)."""
    data = yaml.safe_load(setup["config_path"].read_text())
    data["targets"]["hidden"]["reality_gap"] = {"action_lag": {"tau": 0.03}}
    config = parse_config(data, "lagged.yaml")
    recording = tmp_path / "lagged.npz"
    record(config, model_path=None, domain="hidden", episodes=40, seed=3).write(recording)
    params = _params(*PARAMS, "{quantity: action_lag, set: [0.0, 0.1]}")
    result = identify(recording, config, params, seed=0)
    found = {e.param.quantity: e for e in result.fit.estimates}
    assert found["action_lag"].value == pytest.approx(0.03, rel=0.05)
    assert found["actuator_gear"].value == pytest.approx(TRUTH["gear"], rel=0.02)
    assert found["body_mass"].value == pytest.approx(TRUTH["poles"], rel=0.02)
    without = identify(recording, config, _params(*PARAMS), seed=0)
    assert result.fit.loss < 0.01 * without.fit.loss  # no model quantity stands in for the lag
    paths = write_identification(result, tmp_path / "found")
    lagged = load_config(paths["identified.yaml"]).source.reality_gap.action_lag
    assert lagged is not None and lagged.tau == pytest.approx(0.03, rel=0.05)
    assert all(c.quantity != "action_lag" for c in load_config(paths["identified.yaml"]).source.dynamics)
    spread = load_config(paths["identified_randomized.yaml"]).source.reality_gap.action_lag
    assert spread is not None and spread.tau.low >= 0.0  # type: ignore[union-attr]
    assert spread.tau.low <= found["action_lag"].value * (1 + 1e-3) and spread.tau.high >= spread.tau.low  # type: ignore[union-attr]


def test_an_encoder_offset_is_identified_and_named_to_correct(setup: dict[str, Any], tmp_path: Path) -> None:
    """The first hinge's recorded angle holds 0.05 rad beyond the truth (an encoder's zero): sensor_offset on
    that joint is found within 0.005 rad with the model's values, and is named in the report, not put into the
    identified domain (the simulator's joints have no offset; the robot's reading is what to correct)."""
    t = read_trajectories(setup["recording"])
    t.qpos[:, 1] += 0.05
    shifted = tmp_path / "shifted.npz"
    t.write(shifted)
    params = _params(*PARAMS, "{quantity: sensor_offset, select: hinge, offset: [-0.2, 0.2]}")
    result = identify(shifted, setup["config"], params, seed=0)
    found = {e.param.quantity: e for e in result.fit.estimates}
    assert found["sensor_offset"].value == pytest.approx(0.05, abs=0.005)
    assert found["actuator_gear"].value == pytest.approx(TRUTH["gear"], rel=0.05)
    paths = write_identification(result, tmp_path / "found")
    assert "sensor_offset/hinge" in paths["report.md"].read_text()
    assert all(c.quantity != "sensor_offset" for c in load_config(paths["identified.yaml"]).source.dynamics)


BAD_LAGS = [
    "{quantity: action_lag, scale: [0.5, 2]}",
    "{quantity: action_lag, set: [-0.01, 0.1]}",
    "{quantity: action_lag, select: all, set: [0, 0.1]}",
]


@pytest.mark.parametrize("param", BAD_LAGS)
def test_a_motor_lag_is_fitted_in_seconds_from_zero_up(param: str) -> None:
    with pytest.raises(ValueError, match="action_lag is fitted in seconds, as set"):
        _params(param)


def test_observations_and_actions_alone_identify_the_same_values(setup: dict[str, Any], tmp_path: Path) -> None:
    """A recording of what the policy saw, without qpos and qvel (a robot's log): the states are read from the
    observations (IDP's angles from their sines and cosines) and the fit finds what it finds from the states."""
    observed = tmp_path / "observed.npz"
    read_trajectories(setup["recording"]).observations_only().write(observed)
    assert not read_trajectories(observed).has_states
    result = identify(observed, setup["config"], _params(*PARAMS), seed=0)
    found = {e.param.quantity: e.value for e in result.fit.estimates}
    assert found["body_mass"] == pytest.approx(TRUTH["poles"], rel=0.02)
    assert found["actuator_gear"] == pytest.approx(TRUTH["gear"], rel=0.02)
    assert found["joint_damping"] == pytest.approx(TRUTH["damping"], rel=0.05)
    assert result.trajectories.header["states_from"] == "observation"
    assert result.trajectories.episodes == read_trajectories(setup["recording"]).episodes


def test_a_clipped_velocity_holds_no_state_and_splits_its_episode() -> None:
    """Hopper clips its observed velocities at 10: such a row is cut out of the windows (its episode goes on
    in pieces on either side), and the x position it does not observe is 0."""
    import gymnasium as gym

    from sim2real.identification.observations import with_states
    from sim2real.identification.trajectories import control_period

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    rows = []
    for _ in range(12):
        rows.append(env.unwrapped._get_obs())  # type: ignore[attr-defined]
        env.step(env.action_space.sample())
    obs = np.array(rows)
    obs[5, 8] = 10.0  # a joint velocity at the clip
    t = Trajectories(np.zeros(12, dtype=np.int64), np.zeros((12, 0)), np.zeros((12, 0)), np.zeros((12, 3)), obs)
    read = with_states(Path("log.npz"), t, env, control_period(env))
    assert list(read.episode) == [0] * 5 + [1] + [2] * 6 and read.episodes == 1
    assert np.all(read.qpos[:, 0] == 0.0) and np.allclose(read.qpos[:, 1:], obs[:, :5])


# ------------------------------------------------------------------------------------------- sensor noise


def _hopper(noise: float) -> tuple[Trajectories, Trajectories, Any]:
    """A clean Hopper recording of random actions (contacts, a free-floating torso's slides and hinge) and the
    same rows with Gaussian noise of std ``noise`` on every position and velocity."""
    import gymnasium as gym

    config = parse_config({"env": "Hopper-v5", "algo": {"name": "ppo"}}, "hopper.yaml")
    clean = record(config, model_path=None, domain="source", episodes=10, seed=0)
    rng = np.random.default_rng(1)
    noisy = Trajectories(clean.episode, clean.qpos + rng.normal(0, noise, clean.qpos.shape),
                         clean.qvel + rng.normal(0, noise, clean.qvel.shape), clean.action, header=clean.header)  # fmt: skip
    env = gym.make("Hopper-v5")
    try:
        return clean, noisy, (env.unwrapped.model, env.unwrapped.dt)  # type: ignore[attr-defined]
    finally:
        env.close()


def test_sensor_noise_is_estimated_and_taken_out_of_the_positions() -> None:
    """The smoother reads the noise level off the recording alone (within 20% of the true 0.01 on every
    coordinate) and brings every position at least 2x closer to the truth (3x to 5x on most)."""
    from sim2real.identification.smoothing import smooth_positions

    clean, noisy, (model, dt) = _hopper(0.01)
    smoothed, found = smooth_positions(noisy, model, dt)
    assert found.names == ["rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]
    assert all(found.smoothed)
    assert found.noise == pytest.approx([0.01] * 6, rel=0.2)
    before = np.sqrt(((noisy.qpos - clean.qpos) ** 2).mean(axis=0))
    after = np.sqrt(((smoothed.qpos - clean.qpos) ** 2).mean(axis=0))
    assert np.all(after < before / 2), (before, after)
    assert np.array_equal(smoothed.qvel, noisy.qvel)  # velocities stay as recorded


def test_a_clean_recording_is_replayed_as_recorded() -> None:
    """What a clean recording's positions miss against the trapezoid rule is the integrator's, not noise: the
    smoother finds none and changes nothing (the clean fits keep their accuracy)."""
    from sim2real.identification.smoothing import smooth_positions

    clean, _, (model, dt) = _hopper(0.01)
    smoothed, found = smooth_positions(clean, model, dt)
    assert not any(found.smoothed), found.as_dict()
    assert np.array_equal(smoothed.qpos, clean.qpos)


def test_the_report_says_what_noise_was_taken_out(setup: dict[str, Any], tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.npz"
    record(setup["config"], model_path=None, domain="hidden", episodes=40, seed=3, noise=0.01).write(noisy)
    result = identify(noisy, setup["config"], _params(*PARAMS), seed=0)
    assert result.smoothing is not None and any(result.smoothing.smoothed)
    write_identification(result, tmp_path / "id")
    assert "sensor noise estimated and taken out of the positions" in (tmp_path / "id" / "report.md").read_text()
    report = json.loads((tmp_path / "id" / "report.json").read_text())
    assert set(report["smoothing"]) == {"slider", "hinge", "hinge2"}
    off = identify(noisy, setup["config"], _params(*PARAMS), seed=0, smooth=False)
    assert off.smoothing is None
