"""Domain randomization: distributions, seeded per-env draws, when they happen, what the model holds, bad input."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from sim2real.config import dump_config, load_config, parse_config, read_config_data
from sim2real.domain import DomainSpec, find_dynamics_wrapper, make_domain_env
from sim2real.dynamics import QUANTITIES, Change, parameter_name
from sim2real.errors import Sim2RealError
from sim2real.randomization import AdrRange, Choice, LogUniform, Normal, RandomChange, Uniform, make_generator
from sim2real.training import build_vec_env, train
from tests.conftest import ROOT, tiny_config_data

IDP = "InvertedDoublePendulum-v5"
HOPPER = "Hopper-v5"  # episodes of 100+ steps under zero actions
BODIES = ("cart", "pole", "pole2")


pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def uniform(low: float, high: float) -> dict[str, Any]:
    return {"dist": "uniform", "low": low, "high": high}


def config_with(dynamics: list[dict[str, Any]], env: str = IDP, **source: Any) -> dict[str, Any]:
    return {"env": env, "algo": {"name": "ppo"}, "source": {"dynamics": dynamics, **source}}


def source_env(dynamics: list[dict[str, Any]], env: str = IDP, seed: Any = (0, 0)) -> gym.Env:
    """The source domain of a config holding ``dynamics``, as the trainer builds each env."""
    config = parse_config(config_with(dynamics, env), "experiment.yaml")
    return make_domain_env(config.env, DomainSpec.from_config(config.source), seed=seed)


def zeros(env: gym.Env) -> np.ndarray:
    return np.zeros(env.action_space.shape, dtype=np.float32)


def phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def big_phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# ------------------------------------------------------------------------------------------ distributions

N = 20_000


def test_uniform_covers_its_range_evenly():
    draws = Uniform(0.5, 2.0).sample(np.random.default_rng(0), N)
    assert draws.min() >= 0.5 and draws.max() <= 2.0
    counts, _ = np.histogram(draws, bins=10, range=(0.5, 2.0))
    np.testing.assert_allclose(counts / N, 0.1, atol=0.01)


def test_log_uniform_is_uniform_in_log_space():
    draws = LogUniform(0.25, 4.0).sample(np.random.default_rng(0), N)
    assert draws.min() >= 0.25 and draws.max() <= 4.0
    # As likely to halve as to double: a quarter of the draws in each factor-of-two band.
    counts, _ = np.histogram(np.log2(draws), bins=4, range=(-2, 2))
    np.testing.assert_allclose(counts / N, 0.25, atol=0.01)
    assert np.median(draws) == pytest.approx(1.0, abs=0.03)


def test_normal_is_truncated_to_its_bounds_with_the_truncated_mean():
    mean, std, low, high = 1.0, 0.5, 0.8, 2.0
    draws = Normal(mean, std, low, high).sample(np.random.default_rng(0), N)
    assert draws.min() >= low and draws.max() <= high
    a, b = (low - mean) / std, (high - mean) / std
    expected = mean + std * (phi(a) - phi(b)) / (big_phi(b) - big_phi(a))
    assert draws.mean() == pytest.approx(expected, abs=0.01)

    wide = Normal(0.0, 0.1, -10.0, 10.0).sample(np.random.default_rng(1), N)
    assert wide.std() == pytest.approx(0.1, rel=0.03)
    assert Normal(0.0, 1.0, -1.0, 1.0).acceptance() == pytest.approx(0.6827, abs=1e-4)
    np.testing.assert_array_equal(Normal(1.0, 0.0, 0.5, 1.5).sample(np.random.default_rng(0), 3), 1.0)


def test_a_normal_without_mass_in_its_bounds_is_refused():
    # It could only ever draw outside its bounds (or loop forever looking for a draw inside them).
    with pytest.raises(Sim2RealError, match="has no mass in"):
        Normal(0.0, 0.0, 0.5, 1.5)


def test_choice_draws_only_its_values_equally_often():
    draws = Choice((0.5, 1.0, 2.0)).sample(np.random.default_rng(0), N)
    values, counts = np.unique(draws, return_counts=True)
    np.testing.assert_array_equal(values, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(counts / N, 1 / 3, atol=0.015)
    assert Choice((2.0, 0.5)).bounds() == (0.5, 2.0)


def test_adr_range_outside_a_curriculum_stays_at_its_start():
    np.testing.assert_array_equal(AdrRange(0.5, 1.5, 1.0).sample(np.random.default_rng(0), 4), 1.0)
    assert AdrRange(0.5, 1.5, 1.0).bounds() == (0.5, 1.5)


def test_generators_are_reproducible_per_seed_and_independent_per_env_and_stream():
    def draws(seed, stream="dynamics"):
        return make_generator(seed, stream).random(5)

    np.testing.assert_array_equal(draws((7, 0)), draws((7, 0)))
    assert not np.allclose(draws((7, 0)), draws((7, 1))), "env index"
    assert not np.allclose(draws((7, 0)), draws((8, 0))), "run seed"
    assert not np.allclose(draws((7, 0)), draws((7, 0), "observation_noise")), "stream"
    assert not np.allclose(draws(None), draws(None)), "no seed: fresh entropy"


# ------------------------------------------------------------------------------------------ the model holds the draws


def test_every_reset_draws_new_masses_and_the_model_holds_them():
    env = source_env([{"quantity": "body_mass", "select": "all", "scale": uniform(0.5, 2.0)}])
    model = env.unwrapped.model
    dynamics = find_dynamics_wrapper(env).dynamics
    nominal = np.array([dynamics.nominal("body_mass")[b] for b in BODIES])
    nominal_inertia = gym.make(IDP).unwrapped.model.body_inertia[1:]

    seen = []
    for episode in range(5):
        _, info = env.reset(seed=0) if episode == 0 else env.reset()
        draws = np.array([info["randomization"][f"body_mass/{b}"] for b in BODIES])
        assert set(info["randomization"]) == {f"body_mass/{b}" for b in BODIES}
        assert np.all((draws >= 0.5) & (draws <= 2.0))
        np.testing.assert_allclose(model.body_mass[1:], nominal * draws, rtol=1e-12)
        # Inertia follows the mass, and the constants MuJoCo derives from it are recomputed.
        np.testing.assert_allclose(model.body_inertia[1:], nominal_inertia * draws[:, None], rtol=1e-12)
        assert model.body_subtreemass[0] == pytest.approx(model.body_mass.sum())
        # The values hold for the whole episode and every step reports them.
        for _ in range(3):
            *_, step_info = env.step(zeros(env))
            assert step_info["randomization"] == info["randomization"]
        assert env.get_wrapper_attr("randomization_values")() == info["randomization"]
        seen.append(draws)
    assert len({tuple(d) for d in seen}) == 5, "each episode draws anew"
    assert len(set(seen[0])) == 3, "each body draws its own factor"


def test_set_and_offset_draws_are_absolute_values_and_additions():
    env = source_env(
        [
            {"quantity": "joint_damping", "select": ["hinge", "hinge2"], "set": uniform(0.0, 0.5)},
            {"quantity": "geom_friction", "select": "cpole", "offset": {"dist": "choice", "values": [-0.2, 0.3]}},
            {"quantity": "timestep", "scale": {"dist": "log_uniform", "low": 0.5, "high": 1.0}},
        ]
    )
    dynamics = find_dynamics_wrapper(env).dynamics
    friction = dynamics.nominal("geom_friction", "cpole")["cpole"]
    timestep = dynamics.nominal("timestep", None)["timestep"]
    for seed in range(4):
        _, info = env.reset(seed=seed)
        values = info["randomization"]
        assert set(values) == {"joint_damping/hinge", "joint_damping/hinge2", "geom_friction/cpole", "timestep"}
        assert dynamics.get("joint_damping", ["hinge", "hinge2"]) == {
            "hinge": values["joint_damping/hinge"],
            "hinge2": values["joint_damping/hinge2"],
        }
        assert values["geom_friction/cpole"] in (-0.2, 0.3)
        assert dynamics.get("geom_friction", "cpole")["cpole"] == pytest.approx(
            friction + values["geom_friction/cpole"]
        )
        assert env.unwrapped.model.opt.timestep == pytest.approx(timestep * values["timestep"])
        assert env.unwrapped.dt == pytest.approx(timestep * values["timestep"] * env.unwrapped.frame_skip)


def test_a_shared_term_draws_one_factor_for_all_its_elements():
    env = source_env([{"quantity": "body_mass", "select": "all", "scale": uniform(0.5, 2.0), "shared": True}])
    dynamics = find_dynamics_wrapper(env).dynamics
    nominal = np.array([dynamics.nominal("body_mass")[b] for b in BODIES])
    for seed in range(3):
        _, info = env.reset(seed=seed)
        assert list(info["randomization"]) == ["body_mass/all"]
        np.testing.assert_allclose(
            env.unwrapped.model.body_mass[1:] / nominal, info["randomization"]["body_mass/all"], rtol=1e-12
        )


def test_random_changes_apply_after_fixed_ones():
    env = source_env(
        [
            {"quantity": "body_mass", "select": "all", "scale": 2.0},
            {"quantity": "body_mass", "select": "pole", "set": uniform(1.0, 1.5)},
        ]
    )
    dynamics = find_dynamics_wrapper(env).dynamics
    _, info = env.reset(seed=0)
    masses = dynamics.get("body_mass")
    assert masses["pole"] == info["randomization"]["body_mass/pole"]
    assert masses["cart"] == pytest.approx(2 * dynamics.nominal("body_mass")["cart"])


def model_arrays(model: Any) -> dict[str, bytes]:
    """Every array of an ``MjModel`` (derived constants included) and its options, as bytes."""
    arrays = {f"opt.{name}": np.asarray(getattr(model.opt, name)).tobytes() for name in ("timestep", "gravity")}
    for name in dir(model):
        value = getattr(model, name) if not name.startswith("_") else None
        if isinstance(value, np.ndarray):
            arrays[name] = value.tobytes()
    return arrays


def test_a_randomized_model_is_bit_for_bit_the_fixed_domain_of_its_draws():
    """Whatever a reset draws (every operation and distribution, shared or per element, rows in one block or
    not, ADR at a boundary or not), the model equals the fixed domain that applies those values."""
    fixed = [Change("body_mass", "scale", 1.2, select="all")]
    random = [
        RandomChange("body_mass", "scale", Uniform(0.7, 1.3), select=["foot", "torso"]),  # rows not in one block
        RandomChange("geom_friction", "set", Uniform(0.5, 2.0), select=["foot_geom", "floor"], shared=True),
        RandomChange("actuator_gear", "scale", LogUniform(0.7, 1.1), select="all"),
        RandomChange("joint_damping", "offset", Normal(0.1, 0.2, 0.0, 0.5), select=["thigh_joint", "leg_joint"]),
        RandomChange("joint_armature", "set", AdrRange(0.0, 1.0, 0.5), select="all", shared=True),
        RandomChange("actuator_ctrlrange", "scale", Choice((0.8, 0.9, 1.0)), select="all"),
        RandomChange("gravity", "offset", Uniform(-0.5, 0.5)),
        RandomChange("timestep", "scale", Uniform(0.9, 1.1)),
    ]
    randomized = make_domain_env(HOPPER, [*fixed, *random], seed=(0, 0), check_friction=False)
    wrapper = find_dynamics_wrapper(randomized)
    wrapper.set_adr_bounds({"joint_armature/all": [0.2, 0.8]})
    target = find_dynamics_wrapper(make_domain_env(HOPPER, check_friction=False))
    names = {kind: target.dynamics.names(kind) for kind in ("body", "joint", "actuator")}
    boundaries = set()
    for episode in range(8):
        _, info = randomized.reset(seed=episode) if episode < 2 else randomized.reset()
        drawn = info["randomization"]
        boundaries.add(info.get("adr_boundary"))
        changes = [*fixed]
        for c in random:
            kind = QUANTITIES[c.quantity].kind
            if kind is None or c.shared:
                changes.append(Change(c.quantity, c.op, drawn[parameter_name(c.quantity, c.select)], c.select))
                continue
            for element in names[kind] if c.select == "all" else c.select:
                changes.append(Change(c.quantity, c.op, drawn[f"{c.quantity}/{element}"], element))
        target.set_changes(changes)
        assert model_arrays(wrapper.dynamics.model) == model_arrays(target.dynamics.model), episode
    assert len(boundaries) > 1, "some episodes pinned an ADR boundary, some drew inside the range"


# ------------------------------------------------------------------------------------------ when draws happen


def test_startup_terms_hold_for_the_env_and_reset_terms_change_every_episode():
    env = source_env(
        [
            {"quantity": "body_mass", "select": "pole", "scale": uniform(0.5, 2.0), "when": "startup"},
            {"quantity": "actuator_gear", "select": "all", "scale": uniform(0.5, 2.0)},
        ]
    )
    masses, gears = set(), set()
    for episode in range(5):
        # A seeded reset restarts the generator but never redraws a startup term.
        _, info = env.reset(seed=episode)
        masses.add(info["randomization"]["body_mass/pole"])
        gears.add(info["randomization"]["actuator_gear/slide"])
        assert find_dynamics_wrapper(env).dynamics.get("body_mass", "pole")["pole"] == pytest.approx(
            info["randomization"]["body_mass/pole"] * find_dynamics_wrapper(env).dynamics.nominal("body_mass")["pole"]
        )
    assert len(masses) == 1
    assert len(gears) == 5


def test_interval_terms_are_redrawn_every_k_steps_and_each_info_describes_its_step():
    env = source_env(
        [{"quantity": "body_mass", "select": "torso", "scale": uniform(0.5, 2.0), "when": "interval", "every": 4}],
        env=HOPPER,
    )
    model = env.unwrapped.model
    torso = 1
    nominal = find_dynamics_wrapper(env).dynamics.nominal("body_mass")["torso"]
    _, info = env.reset(seed=0)
    first = info["randomization"]["body_mass/torso"]
    used, reported = [], []
    for _ in range(20):
        used.append(model.body_mass[torso] / nominal)  # what this step simulates with
        *_, terminated, truncated, step_info = env.step(zeros(env))
        assert not (terminated or truncated)
        reported.append(step_info["randomization"]["body_mass/torso"])

    np.testing.assert_allclose(used, reported, rtol=1e-12)
    assert reported[0] == first
    blocks = np.array(reported).reshape(5, 4)
    assert np.all(blocks == blocks[:, :1]), "constant for k steps"
    assert len(set(blocks[:, 0])) == 5, "redrawn after every k steps"
    _, info = env.reset()
    assert info["randomization"]["body_mass/torso"] not in set(reported), "and at every reset"


# ------------------------------------------------------------------------------------------ seeding and vector envs

RANDOMIZED_SOURCE = {
    "dynamics": [
        {"quantity": "body_mass", "select": "all", "scale": {"dist": "log_uniform", "low": 0.5, "high": 2.0}},
        {"quantity": "actuator_gear", "select": "all", "scale": uniform(0.5, 1.5), "when": "startup"},
        {
            "quantity": "joint_damping",
            "select": "hinge",
            "set": {"dist": "normal", "mean": 0.1, "std": 0.1, "low": 0.0, "high": 0.3},
        },
    ],
    "reality_gap": {"observation_bias": {"bias": uniform(-0.05, 0.05)}, "action_scale": {"scale": uniform(0.8, 1.0)}},
}


def vec_sequence(tmp_path: Path, seed: int = 0, n_envs: int = 3, steps: int = 40, **train: Any) -> list[Any]:
    """Every env's draws, in order: after the first reset, and at the end of every episode."""
    data = tiny_config_data(tmp_path / "runs", n_envs=n_envs, seed=seed, **train)
    data["source"] = RANDOMIZED_SOURCE
    venv = build_vec_env(parse_config(data))
    try:
        venv.reset()
        sequence: list[Any] = [("reset", i, info["randomization"]) for i, info in enumerate(venv.reset_infos)]
        sequence.append(("env_method", venv.env_method("randomization_values")))
        for _ in range(steps):
            _, _, dones, infos = venv.step(np.zeros((n_envs, 1), dtype=np.float32))
            sequence += [("done", i, infos[i]["randomization"]) for i in np.flatnonzero(dones)]
            sequence += [("reset", i, venv.reset_infos[i]["randomization"]) for i in np.flatnonzero(dones)]
        sequence.append(("env_method", venv.env_method("randomization_values")))
    finally:
        venv.close()
    return sequence


def test_same_seed_reproduces_the_draws_and_each_env_draws_its_own(tmp_path):
    first = vec_sequence(tmp_path)
    assert sum(1 for item in first if item[0] == "done") >= 6, "several episodes ended"
    assert vec_sequence(tmp_path) == first
    assert vec_sequence(tmp_path, seed=1) != first

    resets = [item[2] for item in first if item[0] == "reset"]
    startup: dict[int, float] = {}
    episode: dict[int, dict[str, float]] = {}
    for kind, *rest in first:
        if kind == "reset":
            index, values = rest
            startup.setdefault(index, values["actuator_gear/slide"])
            assert values["actuator_gear/slide"] == startup[index], "a startup draw holds for the env"
            episode[index] = values
        elif kind == "done":
            index, values = rest
            assert values == episode[index], "an episode's last info reports the draws it ran with"
    assert len(set(startup.values())) == 3, "each env has its own startup draw"
    masses = [v["body_mass/pole"] for v in resets]
    assert len(set(masses)) == len(masses), "no two episodes, in one env or across envs, draw the same"
    assert {k.split("/")[0] for k in resets[0]} == {
        "body_mass",
        "actuator_gear",
        "joint_damping",
        "observation_bias",
        "action_scale",
    }


@pytest.mark.slow
def test_draws_are_the_same_in_dummy_fork_and_spawn_vector_envs(tmp_path):
    dummy = vec_sequence(tmp_path)
    fork = vec_sequence(tmp_path, vec_env="subproc", start_method="fork")
    spawn = vec_sequence(tmp_path, vec_env="subproc", start_method="spawn")
    assert fork == dummy
    assert spawn == dummy
    first_resets = [values for kind, _, values in dummy[:3]]
    assert first_resets[0] != first_resets[1] != first_resets[2] != first_resets[0]


# ------------------------------------------------------------------------------------------ bad input

BAD_CONFIGS = {
    "unknown quantity": (
        {"quantity": "body_mas", "select": "pole", "scale": uniform(0.5, 1.5)},
        "source.dynamics.0.quantity: unknown quantity 'body_mas'",
    ),
    "inverted uniform": (
        {"quantity": "body_mass", "select": "pole", "scale": uniform(2.0, 1.0)},
        "source.dynamics.0.scale: inverted bounds, low 2.0 > high 1.0",
    ),
    "inverted normal": (
        {
            "quantity": "joint_damping",
            "select": "hinge",
            "set": {**uniform(0.5, 0.1), "dist": "normal", "mean": 0.2, "std": 1},
        },
        "source.dynamics.0.set: inverted bounds, low 0.5 > high 0.1",
    ),
    "log-uniform through zero": (
        {"quantity": "body_mass", "select": "pole", "scale": {"dist": "log_uniform", "low": 0.0, "high": 2.0}},
        "source.dynamics.0.scale.low: Input should be greater than 0",
    ),
    "unknown distribution": (
        {"quantity": "body_mass", "select": "pole", "scale": {"dist": "beta", "low": 0.5, "high": 1.5}},
        "does not match any of the expected tags: 'uniform', 'log_uniform', 'normal', 'choice', 'adr'",
    ),
    "normal with no mass in bounds": (
        {
            "quantity": "body_mass",
            "select": "pole",
            "scale": {"dist": "normal", "mean": 1, "std": 0.01, "low": 2, "high": 3},
        },
        "holds under 0.1% of this normal's mass",
    ),
    "interval without every": (
        {"quantity": "body_mass", "select": "pole", "scale": uniform(0.5, 1.5), "when": "interval"},
        "source.dynamics.0: when: interval needs 'every'",
    ),
    "every without interval": (
        {"quantity": "body_mass", "select": "pole", "scale": uniform(0.5, 1.5), "every": 3},
        "source.dynamics.0: 'every' is only for when: interval",
    ),
    "when on a fixed value": (
        {"quantity": "body_mass", "select": "pole", "scale": 1.5, "when": "startup"},
        "source.dynamics.0: when, every and shared apply only to a value drawn from a distribution",
    ),
    "zero every": (
        {"quantity": "body_mass", "select": "pole", "scale": uniform(0.5, 1.5), "when": "interval", "every": 0},
        "source.dynamics.0.every: Input should be greater than 0",
    ),
}


@pytest.mark.parametrize(("change", "message"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_randomized_change_is_refused_naming_file_and_field(change, message):
    with pytest.raises(Sim2RealError) as error:
        parse_config(config_with([change]), "experiment.yaml")
    text = str(error.value)
    assert text.startswith("experiment.yaml: source.")
    assert message in text
    assert "\n" not in text


BAD_DOMAINS = {
    "unknown element": (
        {"quantity": "body_mass", "select": ["pole", "nope"], "scale": uniform(0.5, 1.5)},
        "body_mass: unknown body 'nope'; valid body names: cart, pole, pole2",
    ),
    "mass scaled to zero": (
        {"quantity": "body_mass", "select": "all", "scale": uniform(0.0, 1.5)},
        "the distribution's low end is invalid: body_mass of body 'cart' would be 0.0: must be finite and > 0 (kg)",
    ),
    "negative mass": (
        {"quantity": "body_mass", "select": "pole2", "scale": {"dist": "choice", "values": [1.0, -0.5]}},
        "the distribution's low end is invalid: body_mass of body 'pole2' would be -2.09",
    ),
    "friction offset below zero": (
        {"quantity": "geom_friction", "select": "cpole", "offset": uniform(-1.5, 0.5)},
        "the distribution's low end is invalid: geom_friction of geom 'cpole' would be -0.5: must be finite and >= 0",
    ),
    "negative damping": (
        {
            "quantity": "joint_damping",
            "select": "hinge",
            "set": {"dist": "normal", "mean": 0.1, "std": 0.1, "low": -0.1, "high": 0.3},
        },
        "the distribution's low end is invalid: joint_damping of joint 'hinge' would be -0.1",
    ),
    "randomized twice": (
        {"quantity": "body_mass", "select": "pole", "scale": uniform(0.5, 1.5)},
        "body_mass/pole: randomized twice",
    ),
}


@pytest.mark.parametrize(("change", "message"), BAD_DOMAINS.values(), ids=BAD_DOMAINS.keys())
def test_unknown_elements_and_distributions_that_can_produce_invalid_physics_are_refused(change, message):
    changes = [change, change] if message.endswith("randomized twice") else [change]
    with pytest.raises(Sim2RealError) as error:
        source_env(changes)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_randomized_source_fails_before_the_run_folder_is_written(tmp_path):
    data = tiny_config_data(tmp_path / "runs")
    data["source"] = {"dynamics": [{"quantity": "body_mass", "select": "all", "scale": uniform(-1.0, 1.0)}]}
    with pytest.raises(Sim2RealError, match="the distribution's low end is invalid: body_mass"):
        train(parse_config(data))
    assert not (tmp_path / "runs").exists()


def test_interval_terms_need_every_outside_the_config_too():
    with pytest.raises(Sim2RealError, match="when: interval needs 'every'"):
        make_domain_env(IDP, [RandomChange("body_mass", "scale", Uniform(0.5, 1.5), select="pole", when="interval")])


# ------------------------------------------------------------------------------------------ config files


def test_a_randomized_config_round_trips_through_the_run_folder_yaml():
    config = parse_config(
        config_with(
            [
                {
                    "quantity": "body_mass",
                    "select": ["pole", "pole2"],
                    "scale": {"dist": "log_uniform", "low": 0.5, "high": 2},
                },
                {"quantity": "gravity", "offset": {"dist": "normal", "mean": 0, "std": 0.1, "low": -0.3, "high": 0.3}},
                {
                    "quantity": "joint_damping",
                    "select": "hinge",
                    "set": uniform(0, 0.2),
                    "when": "interval",
                    "every": 5,
                },
                {"quantity": "actuator_gear", "select": "all", "scale": {"dist": "adr", "low": 0.5, "high": 1.5}},
            ],
            adr={"low_threshold": 10, "high_threshold": 100},
            reality_gap={"action_latency": {"steps": {"dist": "choice", "values": [0, 1]}, "when": "startup"}},
        )
    )
    assert parse_config(yaml.safe_load(dump_config(config))) == config
    changes = DomainSpec.from_config(config.source).changes
    assert changes[3] == RandomChange("actuator_gear", "scale", AdrRange(0.5, 1.5, 1.0), select="all")
    assert changes[2].when == "interval" and changes[2].every == 5


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_extends_merges_mappings_underneath_and_lists_replace(tmp_path):
    base = tiny_config_data(tmp_path / "runs")
    base["source"] = {
        "dynamics": [
            {"quantity": "body_mass", "select": "all", "scale": uniform(0.5, 2.0)},
            {"quantity": "actuator_gear", "select": "all", "scale": uniform(0.5, 2.0)},
        ]
    }
    write_yaml(tmp_path / "base.yaml", base)
    child = write_yaml(
        tmp_path / "variants" / "child.yaml",
        {
            "extends": "../base.yaml",
            "algo": {"n_steps": 128},
            "source": {"dynamics": [{"quantity": "timestep", "scale": uniform(0.9, 1.1)}]},
            "run": {"experiment": "child"},
        },
    )
    config = load_config(child)
    assert config.algo.n_steps == 128
    assert config.algo.net_arch == [16] and config.algo.batch_size == 64, "the rest of algo comes from the base"
    assert [d.quantity for d in config.source.dynamics] == ["timestep"], "a list replaces the base's list"
    assert list(config.targets) == ["heavy"]
    assert config.run.experiment == "child" and config.run.root == str(tmp_path / "runs")
    assert "extends" not in read_config_data(child)

    # A chain resolves each file relative to itself, the nearest file winning.
    grandchild = write_yaml(
        tmp_path / "deep" / "er" / "grandchild.yaml", {"extends": "../../variants/child.yaml", "algo": {"n_steps": 256}}
    )
    config = load_config(grandchild)
    assert config.algo.n_steps == 256 and config.run.experiment == "child" and config.algo.batch_size == 64


def test_extends_cycles_are_refused_naming_the_file(tmp_path):
    write_yaml(tmp_path / "a.yaml", {"extends": "b.yaml", "env": IDP})
    write_yaml(tmp_path / "b.yaml", {"extends": "a.yaml", "algo": {"name": "ppo"}})
    with pytest.raises(Sim2RealError, match=r"b\.yaml: extends: a\.yaml leads back to itself"):
        load_config(tmp_path / "a.yaml")
    write_yaml(tmp_path / "self.yaml", {"extends": "./self.yaml", "env": IDP})
    with pytest.raises(Sim2RealError, match=r"self\.yaml: extends: \./self\.yaml leads back to itself"):
        load_config(tmp_path / "self.yaml")


def test_extends_a_missing_or_non_mapping_file_is_refused(tmp_path):
    write_yaml(tmp_path / "child.yaml", {"extends": "missing.yaml", "env": IDP})
    with pytest.raises(Sim2RealError, match=r"missing\.yaml: no such config file"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    write_yaml(tmp_path / "child.yaml", {"extends": "list.yaml", "env": IDP})
    with pytest.raises(Sim2RealError, match=r"list\.yaml: expected a mapping"):
        load_config(tmp_path / "child.yaml")
    write_yaml(tmp_path / "child.yaml", {"extends": ["a.yaml"], "env": IDP})
    with pytest.raises(Sim2RealError, match=r"child\.yaml: extends: expected the path of another config file"):
        load_config(tmp_path / "child.yaml")


def test_shipped_randomized_config_is_the_nominal_experiment_with_a_randomized_source():
    folder = ROOT / "configs" / "inverted_double_pendulum"
    nominal, randomized = load_config(folder / "nominal.yaml"), load_config(folder / "randomized.yaml")
    assert randomized.algo == nominal.algo and randomized.train == nominal.train
    assert randomized.targets == nominal.targets
    assert randomized.run.experiment == "randomized" != nominal.run.experiment
    assert all(isinstance(c, RandomChange) for c in DomainSpec.from_config(randomized.source).changes)


def test_envs_built_without_a_seed_are_reproducible_from_a_seeded_reset():
    # A startup draw of an unseeded env comes from fresh entropy; the first seeded reset must redraw it.
    changes = [
        RandomChange("timestep", "scale", Uniform(0.9, 1.0), when="startup"),
        RandomChange("gravity", "scale", Uniform(0.9, 1.0)),
    ]
    first, second = (make_domain_env("Hopper-v5", changes).reset(seed=3)[1]["randomization"] for _ in range(2))
    assert first == second
    # numpy integers are seeds too.
    seeded = make_domain_env("Hopper-v5", changes, seed=np.int64(3)).reset()[1]["randomization"]
    assert seeded == make_domain_env("Hopper-v5", changes, seed=3).reset()[1]["randomization"]
