"""Config files: shipped YAMLs validate and build; a bad one fails naming file, field and what is allowed."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim2real.config import (
    LinearSchedule,
    TransferConfig,
    apply_overrides,
    dump_config,
    load_config,
    load_study,
    parse_config,
)
from sim2real.domain import check_domains
from sim2real.errors import Sim2RealError
from sim2real.runs import run_dir
from sim2real.study import plan_study

ROOT = Path(__file__).parents[1]
# A study file names sources to pretrain (study.yaml, and others such as recipe_ablation.yaml).
STUDY_FILES = sorted(
    p for p in (ROOT / "configs").glob("**/*.yaml") if "sources" in (yaml.safe_load(p.read_text()) or {})
)
CONFIG_FILES = sorted(set((ROOT / "configs").glob("**/*.yaml")) - set(STUDY_FILES))

MINIMAL: dict[str, Any] = {
    "env": "InvertedPendulum-v5",
    "targets": {"heavy": {"dynamics": [{"quantity": "body_mass", "select": "pole", "scale": 2.0}]}},
    "algo": {"name": "ppo"},
}


pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def minimal(**sections: Any) -> dict[str, Any]:
    """A valid config as YAML data, with top-level ``sections`` replaced."""
    return {**copy.deepcopy(MINIMAL), **sections}


def write(tmp_path: Path, data: Any, name: str = "experiment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(data: Any) -> str:
    with pytest.raises(Sim2RealError) as error:
        parse_config(data, "experiment.yaml")
    return str(error.value)


# ------------------------------------------------------------------------------------------ shipped configs


def test_configs_folder_is_not_empty():
    assert CONFIG_FILES


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_shipped_config_validates_and_every_domain_builds(path):
    config = load_config(path)

    parameters = check_domains(config)

    assert list(parameters) == list(config.domains())
    assert parameters["source"] == {} or config.source.dynamics
    for name, domain in config.targets.items():
        assert parameters[name] or not domain.dynamics, f"target {name} changes nothing"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_shipped_config_round_trips_through_dump_config(path):
    config = load_config(path)

    assert parse_config(yaml.safe_load(dump_config(config))) == config


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_shipped_study_plans_every_run(path, tmp_path):
    study = load_study(path)
    plan = plan_study(path, study, tmp_path / "study")
    transfer_methods = [m for m in study.methods if m != "scratch"]
    expected = len(study.sources) + len(study.targets) * len(study.seed_list()) * (
        ("scratch" in study.methods) + sum(len(study.sources_to_transfer_from(m)) for m in transfer_methods)
    )
    assert len([j for j in plan.jobs if j.kind == "train"]) == expected
    assert set(plan.status.values()) == {"new"}
    assert not (tmp_path / "study").exists()  # planning writes nothing


def test_check_domains_refuses_an_unknown_element_before_training():
    config = parse_config(
        minimal(targets={"heavy": {"dynamics": [{"quantity": "body_mass", "select": "pol", "scale": 2}]}})
    )

    with pytest.raises(Sim2RealError, match=r"unknown body 'pol'.*pole"):
        check_domains(config)


def test_check_domains_reports_each_domains_changed_values():
    parameters = check_domains(parse_config(minimal()))

    assert parameters["source"] == {}
    assert list(parameters["heavy"]) == ["body_mass/pole"]


# ------------------------------------------------------------------------------------------ schema errors


def test_unknown_key_names_file_field_path_and_allowed_keys(tmp_path):
    data = minimal(targets={"heavy": {"dynamics": [{"quantity": "body_mass", "select": "pole", "scael": 2.0}]}})
    path = write(tmp_path, data, "typo.yaml")

    with pytest.raises(Sim2RealError) as error:
        load_config(path)

    message = str(error.value)
    assert str(path) in message
    assert "targets.heavy.dynamics.0.scael: unknown key" in message
    assert "allowed: every, offset, quantity, scale, select, set, shared, when" in message


def test_unknown_top_level_key_lists_the_sections():
    message = error_of(minimal(trian={"seed": 1}))

    assert "trian: unknown key" in message
    assert "algo, env, env_kwargs, eval, history, privileged, run, source, student, targets, train" in message


@pytest.mark.parametrize(
    ("algo", "allowed", "not_allowed"),
    [
        ({"name": "ppo", "n_stepz": 8}, "n_steps", "buffer_size"),
        ({"name": "sac", "n_steps": 8}, "buffer_size", "n_epochs"),
    ],
)
def test_unknown_algo_key_lists_that_algorithms_keys(algo, allowed, not_allowed):
    message = error_of(minimal(algo=algo))

    key = next(k for k in algo if k != "name")
    assert f"algo.{key}: unknown key" in message  # no pydantic union tag ("algo.ppo.") in the path
    allowed_keys = message.split("allowed: ")[1]
    assert allowed in allowed_keys
    assert not_allowed not in allowed_keys


def test_unknown_key_in_a_target_named_dynamics_lists_domain_keys():
    message = error_of(minimal(targets={"dynamics": {"dynamicz": []}}))

    assert "targets.dynamics.dynamicz: unknown key (allowed: adr, dynamics, reality_gap, sampling)" in message


def test_sampling_on_a_target_is_refused():
    mass = {"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 1.0, "high": 2.0}}
    message = error_of(minimal(targets={"heavy": {"dynamics": [mass], "sampling": {"mode": "steps"}}}))

    assert "heavy.sampling: sampling weights a source's training draws" in message


def test_wrong_type_names_the_field():
    message = error_of(minimal(train={"n_envs": "four"}))

    assert "experiment.yaml" in message
    assert "train.n_envs" in message
    assert "integer" in message


@pytest.mark.parametrize(
    ("section", "field", "limit"),
    [
        ({"train": {"n_envs": 0}}, "train.n_envs", "greater than or equal to 1"),
        ({"train": {"n_envs": 1000}}, "train.n_envs", "less than or equal to 256"),
        ({"algo": {"name": "ppo", "gamma": 1.5}}, "algo.gamma", "less than or equal to 1"),
        ({"algo": {"name": "sac", "learning_rate": {"initial": 0}}}, "algo.learning_rate", "greater than 0"),
        ({"eval": {"episodes": 0}}, "eval.episodes", "greater than or equal to 1"),
    ],
)
def test_out_of_range_value_names_the_field_and_the_limit(section, field, limit):
    message = error_of(minimal(**section))

    assert field in message
    assert limit in message


@pytest.mark.parametrize("key", ["env", "algo"])
def test_missing_required_key_is_named(key):
    data = minimal()
    del data[key]

    assert f"{key}: required key is missing" in error_of(data)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"quantity": "body_mass", "select": "pole", "scale": 2.0, "set": 1.0}, "got scale, set"),
        ({"quantity": "body_mass", "select": "pole"}, "got none"),
        ({"quantity": "body_mass", "scale": 2.0}, "body_mass needs 'select'"),
        ({"quantity": "mass", "select": "pole", "scale": 2.0}, "unknown quantity 'mass' (allowed: body_mass"),
        ({"quantity": "body_mass", "select": "pole", "scale": float("nan")}, "finite"),
    ],
)
def test_bad_dynamics_change_is_refused_at_its_path(change, expected):
    message = error_of(minimal(targets={"heavy": {"dynamics": [change]}}))

    assert "targets.heavy.dynamics.0" in message
    assert expected in message


def test_unknown_algorithm_lists_the_known_ones():
    message = error_of(minimal(algo={"name": "dqn"}))

    assert "algo" in message
    assert "'ppo'" in message and "'sac'" in message


def test_source_is_not_a_target_name():
    message = error_of(minimal(targets={"source": {"dynamics": []}}))

    assert "targets" in message
    assert "'source' is reserved" in message


def test_target_name_must_be_an_identifier():
    assert "targets.heavy poles" in error_of(minimal(targets={"heavy poles": {"dynamics": []}}))


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- env\n- algo\n")

    with pytest.raises(Sim2RealError, match=r"list\.yaml: expected a mapping"):
        load_config(path)


def test_malformed_yaml_gives_the_line_number(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("env: Hopper-v5\nalgo:\n  name: ppo\n n_steps: 64\n")

    with pytest.raises(Sim2RealError) as error:
        load_config(path)

    message = str(error.value)
    assert "broken.yaml: malformed YAML at line 4" in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(Sim2RealError, match=r"nope\.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------------------ overrides


def test_overrides_set_nested_fields_with_yaml_typed_values():
    data = apply_overrides(
        minimal(),
        [
            "train.seed=3",
            "train.progress_bar=false",
            "train.normalize.clip_obs=5.5",
            "algo.net_arch=[16, 16]",
            "algo.target_kl=null",
            "algo.learning_rate={initial: 0.001, final: 0}",
            "run.experiment=heavy-poles",
        ],
    )
    config = parse_config(data)

    assert config.train.seed == 3
    assert config.train.progress_bar is False
    assert config.train.normalize is not None and config.train.normalize.clip_obs == 5.5
    assert config.algo.net_arch == [16, 16]
    assert config.algo.target_kl is None
    assert config.algo.learning_rate == LinearSchedule(initial=0.001, final=0.0)
    assert config.run.experiment == "heavy-poles"


def test_override_values_are_read_as_yaml_not_as_strings():
    data = apply_overrides(minimal(), ["run.experiment=2024", "train.seed='3'"])

    assert data["run"]["experiment"] == 2024
    assert data["train"]["seed"] == "3"
    with pytest.raises(Sim2RealError, match=r"run\.experiment: Input should be a valid string"):
        parse_config(data)


def test_overrides_are_validated_with_the_file(tmp_path):
    path = write(tmp_path, minimal())

    assert load_config(path, ["train.seed=7"]).train.seed == 7
    with pytest.raises(
        Sim2RealError, match=r"experiment.yaml: train.n_envs \(--set train.n_envs='0'\): .*greater than or equal to 1"
    ):
        load_config(path, ["train.n_envs=0"])


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("foo", "expected FIELD=VALUE"),
        ("=3", "expected FIELD=VALUE"),
        ("env.name=Hopper-v5", "'env' is not a section"),
        ("train.seed=[1", "not valid YAML"),
    ],
)
def test_bad_override_is_refused(item, expected):
    with pytest.raises(Sim2RealError) as error:
        apply_overrides(minimal(), [item])

    assert repr(item) in str(error.value)
    assert expected in str(error.value)


# ------------------------------------------------------------------------------------------ run folder + dump


@pytest.mark.parametrize(
    ("env", "folder"),
    [
        ("InvertedDoublePendulum-v5", "inverted_double_pendulum_v5"),
        ("HalfCheetah-v5", "half_cheetah_v5"),
        ("Walker2d-v5", "walker2d_v5"),
        ("Sim2Real/BlockPush-v0", "sim2real_block_push_v0"),
    ],
)
def test_run_dir_layout(env, folder):
    config = parse_config(minimal(env=env, run={"root": "out", "experiment": "heavy-poles"}, train={"seed": 4}))

    assert run_dir(config) == Path("out") / folder / "heavy-poles" / "seed_4"


def test_run_dir_defaults():
    assert run_dir(parse_config(minimal())) == Path("runs/inverted_pendulum_v5/default/seed_0")


def test_dump_config_round_trips_every_field_kind():
    config = parse_config(
        minimal(
            env_kwargs={"reset_noise_scale": 0.05},
            source={"dynamics": [{"quantity": "gravity", "set": [0.0, 0.0, -1.62]}]},
            algo={"name": "sac", "learning_rate": {"initial": 0.001}, "ent_coef": 0.1, "net_arch": [16]},
            train={"normalize": {"rewards": False}, "vec_env": "subproc"},
        )
    )

    dumped = dump_config(config)

    assert parse_config(yaml.safe_load(dumped)) == config
    assert "buffer_size: 1000000" in dumped  # defaults are written out


# ------------------------------------------------------------------------------------------- transfer recipe


def _transfer_config(transfer: dict[str, Any], algo: str = "ppo", **train: Any) -> TransferConfig:
    data = minimal(targets={"heavy": {"dynamics": [{"quantity": "body_mass", "select": "all", "scale": 2}]}},
                   transfer=transfer)  # fmt: skip
    data["algo"] = {"name": algo}
    data.setdefault("train", {}).update(train)
    config = parse_config(data)
    assert config.transfer is not None
    assert parse_config(yaml.safe_load(dump_config(config))) == config  # what ran is what config.yaml says
    return config.transfer


def test_the_recommended_recipe_fills_the_remedies_a_config_leaves_unset():
    normalize = {"normalize": {"observations": True, "rewards": True}}
    recommended = _transfer_config({"method": "finetune", "recipe": "recommended"}, **normalize)
    assert (recommended.action_std, recommended.normalization, recommended.reset_returns, recommended.compensate) == (
        "initial", "recalibrate", True, False,
    )  # fmt: skip
    # auto (the default) fills the same, checked at transfer; without normalized observations it has nothing to
    # check and stays plain.
    auto = _transfer_config({"method": "finetune"}, **normalize)
    assert auto.recipe == "auto" and (auto.action_std, auto.normalization, auto.reset_returns) == (
        "initial", "recalibrate", True,
    )  # fmt: skip
    unchecked = _transfer_config({"method": "finetune"}, normalize=None)
    assert (unchecked.action_std, unchecked.normalization, unchecked.reset_returns) == (None, "update", False)
    plain = _transfer_config({"method": "finetune", "recipe": "plain"}, **normalize)
    assert (plain.action_std, plain.normalization, plain.reset_returns) == (None, "update", False)
    # auto's fallback is plain's settings: every remedy at the recipe's value goes back (also as a run's
    # config.yaml holds it), a value the user chose otherwise stays.
    fallback = _transfer_config({"method": "finetune", "action_std": 0.5}, **normalize).without_recipe()
    assert (fallback.recipe, fallback.action_std, fallback.normalization, fallback.reset_returns) == (
        "plain", 0.5, "update", False,
    )  # fmt: skip
    # Statistics the user keeps leave auto nothing to check: it stays plain.
    kept = _transfer_config({"method": "finetune", "normalization": "update"}, **normalize)
    assert (kept.action_std, kept.normalization, kept.reset_returns) == (None, "update", False)
    # What the user sets wins, and statistics the user keeps keep their returns too.
    mine = _transfer_config(
        {"method": "freeze", "recipe": "recommended", "action_std": 0.5, "normalization": "fixed"}, **normalize
    )
    assert (mine.action_std, mine.normalization, mine.reset_returns) == (0.5, "fixed", False)
    # No source weights to remedy (scratch, the fresh column of prognet), nothing measured for SAC yet, nothing
    # to recalibrate without normalization.
    for transfer, algo in (
        ({"method": "scratch", "recipe": "recommended"}, "ppo"),
        ({"method": "prognet", "recipe": "recommended"}, "ppo"),
        ({"method": "finetune", "recipe": "recommended"}, "sac"),
    ):
        untouched = _transfer_config(transfer, algo, **normalize)
        assert (untouched.action_std, untouched.normalization, untouched.reset_returns) == (None, "update", False)
    bare = _transfer_config({"method": "finetune", "recipe": "recommended"}, normalize=None)
    assert (bare.action_std, bare.normalization, bare.reset_returns) == ("initial", "update", False)


def test_study_variants_are_the_study_settings_with_their_own_changes(tmp_path):
    shutil.copytree(ROOT / "configs" / "hopper", tmp_path / "hopper")
    path = tmp_path / "hopper" / "study.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(methods=["scratch", "finetune", "plain", "held"], transfer_from=["nominal", "randomized"], sweeps=[])
    data["variants"] = {
        "plain": {"method": "finetune", "recipe": "plain", "transfer_from": ["nominal"]},
        "held": {"method": "freeze", "freeze": {"layers": 1}, "eval_episodes": 2},
    }
    path.write_text(yaml.safe_dump(data))
    plan = plan_study(path, load_study(path), tmp_path / "study")
    runs = {job.name: job for job in plan.jobs if job.kind == "train" and job.config.train.seed == 0}
    plain = runs["plain from nominal on heavy_slippery, seed 0"].config
    assert plain.transfer is not None and plain.transfer.recipe == "plain" and plain.transfer.action_std is None
    assert "plain from randomized on heavy_slippery, seed 0" not in runs  # its own transfer_from
    held = runs["held from randomized on heavy_slippery, seed 0"]
    assert held.config.transfer is not None
    assert (held.config.transfer.method, held.config.transfer.freeze.layers) == ("freeze", 1)
    assert held.config.transfer.eval_episodes == 2 and held.config.transfer.eval_every == data["transfer"]["eval_every"]
    assert held.config.transfer.action_std == "initial"  # the study's recipe applies to a variant that keeps it
    assert Path(held.folder).parts[-3:] == ("heavy_slippery", "held", "seed_0")


def test_a_config_switched_to_another_method_gets_that_methods_recipe():
    """The library's train_transfer(config, method=...) re-validates the transfer section without the fields the
    recipe filled: prognet from a finetune config keeps the source's std."""
    finetune = _transfer_config({"method": "finetune", "recipe": "recommended"})
    assert finetune.action_std == "initial"
    config = parse_config(
        minimal(targets={"heavy": {"dynamics": []}}, transfer={"method": "finetune", "recipe": "recommended"})
    )
    assert config.transfer == finetune
    switched = finetune.model_copy(update={"method": "prognet"})
    data = {**config.model_dump(mode="json"), "transfer": switched.model_dump(mode="json", exclude_unset=True)}
    prognet = parse_config(data).transfer
    assert prognet is not None and prognet.action_std is None and prognet.normalization == "update"


# ------------------------------------------------------------------------------------------- bad input by class


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "train": {"seed": 1}}, sort_keys=False) + "train:\n  seed: 2\n")
    with pytest.raises(Sim2RealError, match=r"twice\.yaml: .*'train' is given twice \(lines \d+ and \d+\)"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("env: InvertedDoublePendulum-v5\nalgo:\n  name: ppo\n  name: sac\n")
    with pytest.raises(Sim2RealError, match=r"'name' is given twice \(lines 3 and 4\)"):
        load_config(nested)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize("field", ["algo.learning_rate", "train.normalize.clip_obs", "transfer.early_warning.margin"])
def test_non_finite_numbers_are_refused_in_any_numeric_field(tmp_path, field, value):
    data = minimal(targets={"heavy": {"dynamics": []}}, transfer={"method": "finetune"})
    path = write(tmp_path, data)
    with pytest.raises(Sim2RealError, match=re.escape(field.split(".")[-1])):
        load_config(path, [f"{field}={value}"])


def test_a_name_too_long_for_a_folder_is_refused_before_any_folder_exists(tmp_path):
    data = minimal(run={"root": str(tmp_path / "runs"), "experiment": "x" * 300})
    with pytest.raises(Sim2RealError, match=r"run\.experiment"):
        parse_config(data)
    assert not (tmp_path / "runs").exists()


def test_an_override_s_error_names_the_override_and_its_value_not_the_file() -> None:
    """A value from --set is the user's, not the file's: the error says so and shows it, cut short."""
    nominal = ROOT / "configs/inverted_double_pendulum/nominal.yaml"
    with pytest.raises(Sim2RealError) as error:
        load_config(nominal, ["run.experiment=" + "x" * 300])
    message = str(error.value)
    assert "\n" not in message and len(message) < 250
    assert "run.experiment (--set run.experiment='xxxx" in message and "(300 characters)" in message
    assert "at most 100 characters" in message
    # A field the file sets, beside an override of another one, is still the file's.
    with pytest.raises(Sim2RealError) as error:
        load_config(nominal, ["train.seed=-3"])
    assert "train.seed (--set train.seed='-3'): Input should be greater than or equal to 0" in str(error.value)


def test_a_study_s_set_is_named_in_the_error_of_the_config_it_changes(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "configs/inverted_double_pendulum/nominal.yaml", tmp_path / "nominal.yaml")
    study.write_text(
        "env: InvertedDoublePendulum-v5\nconfig: nominal.yaml\nsources: {nominal: {config: nominal.yaml}}\n"
        "targets: [heavy_weak]\nmethods: [scratch]\nseeds: 1\nbudgets: {source: 1000, transfer: 1000}\n"
        "set: [train.n_envs=0]\n"
    )
    with pytest.raises(Sim2RealError) as error:
        plan_study(study, load_study(study), tmp_path / "out")
    assert f"train.n_envs ({study}: set: train.n_envs='0')" in str(error.value)
    assert not (tmp_path / "out").exists()
