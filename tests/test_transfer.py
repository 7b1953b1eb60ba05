"""Transfer runs: layer groups, freezing, per-layer learning rates, unfreezing schedules, progressive nets, safe
source loading, resume, TensorBoard and ``sim2real inspect``.

One tiny source per algorithm is trained per module; each test then runs a transfer of a few hundred steps.
``run_transfer`` passes ``train()`` a callback of the user's kind that records, after each update, which groups
were trainable, which optimizer group held them and at what learning rate, so the tests see the run exactly as
``train()`` drives it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_zip_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sim2real.cli import main
from sim2real.config import parse_config
from sim2real.errors import Sim2RealError
from sim2real.modelfile import read_model
from sim2real.models import ALGORITHMS, build_model, load_policy
from sim2real.runs import RunFolder
from sim2real.training import TrainResult, build_vec_env, load_run_config, normalize_env, train
from sim2real.transfer import CHECK_EPISODES, RecipeCheck, Transfer, read_source, start_transfer
from sim2real.transfer.groups import LayerGroup, groups_of, layer_groups
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data

QUIET = Console(quiet=True)
PPO_HEADS = {"action_net", "value_net", "log_std"}
# The first hidden layer of every network: what `freeze: {layers: 1}` freezes.
FIRST_LAYERS = {
    "ppo": {"mlp_extractor.policy_net.0", "mlp_extractor.value_net.0"},
    "sac": {"actor.latent_pi.0", "critic.qf0.0", "critic.qf1.0"},
}


# ------------------------------------------------------------------------------------------- helpers


def config_data(root: Path, algo: str = "ppo", transfer: dict | None = None, **train: Any) -> dict[str, Any]:
    """The tiny config with two hidden layers (levels and depths need two) and, when given, a transfer section.

    The methods' tests see each mechanism alone: the recipe (whose remedies move the std and the statistics) is
    plain, the guard (which may hand back the source itself) off and the budget one of training steps (the
    schedules' steps stay where the tests put them), unless a test names them; their own tests do.
    """
    data = tiny_config_data(root, algo=algo, **train)
    data["algo"]["net_arch"] = [16, 16]
    if transfer is not None:
        data["transfer"] = {"recipe": "plain", "guard": None, "keep": "last", "budget": "training_steps",
                            **transfer}  # fmt: skip
    return data


@dataclass
class Snapshot:
    """The transfer state after the update at ``step`` (the learning rates are the ones that update used)."""

    step: int
    trainable: set[str]  # groups with requires_grad
    frozen: set[str]  # Transfer.frozen
    optimizer_group: dict[str, str]  # layer group -> the "name" of the optimizer group holding its parameters
    lr: dict[str, float]  # layer group -> learning rate of its optimizer group
    with_state: set[str]  # groups with optimizer state (Adam moments)
    weights: dict[str, torch.Tensor]  # policy state dict


def _optimizers(model: Any) -> list[torch.optim.Optimizer]:
    policy = model.policy
    return [policy.optimizer] if isinstance(model, PPO) else [policy.actor.optimizer, policy.critic.optimizer]


class RecordingCallback(BaseCallback):
    """A callback of the user's (``train(callbacks=...)``) that takes a Snapshot of the model's transfer state at
    each rollout start (after an update) and at the end, read from the model alone."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[Snapshot] = []

    @property
    def groups(self) -> list[LayerGroup]:
        return layer_groups(self.model.policy)

    def snapshot(self) -> Snapshot:
        groups = self.groups
        group_of = {id(p): g.name for g in groups for p in g.params.values()}
        optimizer_group: dict[str, str] = {}
        lr: dict[str, float] = {}
        with_state: set[str] = set()
        for optimizer in _optimizers(self.model):
            for param_group in optimizer.param_groups:
                for param in param_group["params"]:
                    optimizer_group[group_of[id(param)]] = param_group.get("name")
                    lr[group_of[id(param)]] = param_group["lr"] * param_group.get("lr_factor", 1.0)
            with_state |= {group_of[id(p)] for p in optimizer.state}
        trainable = {g.name for g in groups if all(p.requires_grad for p in g.params.values())}
        return Snapshot(
            step=self.model.num_timesteps,
            trainable=trainable,
            frozen={g.name for g in groups if g.role != "target"} - trainable,
            optimizer_group=optimizer_group,
            lr=lr,
            with_state=with_state,
            weights={k: v.detach().clone() for k, v in self.model.policy.state_dict().items()},
        )

    def _on_step(self) -> bool:
        return True

    def _on_training_start(self) -> None:
        self.snapshots.append(self.snapshot())

    def _on_rollout_start(self) -> None:
        if self.num_timesteps > self.snapshots[-1].step:
            self.snapshots.append(self.snapshot())

    def _on_training_end(self) -> None:
        self.snapshots.append(self.snapshot())


@dataclass
class Run:
    result: TrainResult
    recorder: RecordingCallback
    output: str  # what train() printed

    @property
    def dir(self) -> Path:
        return self.result.run_dir

    def json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())


def _train_recorded(config: Any, **kwargs: Any) -> Run:
    recorder = RecordingCallback()
    out = io.StringIO()
    result = train(config, callbacks=[recorder], console=Console(file=out, width=200), **kwargs)
    return Run(result, recorder, out.getvalue())


def run_transfer(root: Path, source: Path | None, transfer: dict, algo: str = "ppo", **train_settings: Any) -> Run:
    """Trains a transfer run on the target 'heavy' from ``source``."""
    return _train_recorded(parse_config(config_data(root, algo, transfer, **train_settings)), source=source)


def resume(run_dir: Path, total_timesteps: int) -> Run:
    return _train_recorded(load_run_config(run_dir, [f"train.total_timesteps={total_timesteps}"]), resume=run_dir)


def fresh_model(root: Path, algo: str, transfer: dict) -> tuple[Any, Any]:
    """A target model as train() builds it, before any transfer (config, model)."""
    config = parse_config(config_data(root, algo, transfer))
    return config, build_model(config, normalize_env(config, build_vec_env(config)))


def group_weights(state: dict[str, torch.Tensor], group: str) -> list[torch.Tensor]:
    return [state[k] for k in state if k.rsplit(".", 1)[0] == group or k == group]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], group: str) -> bool:
    pairs = list(zip(group_weights(a, group), group_weights(b, group), strict=True))
    return bool(pairs) and all(torch.equal(x, y) for x, y in pairs)


def source_policy(source: Path) -> dict[str, torch.Tensor]:
    return read_model(source).policy


def rewrite_zip(original: Path, copy: Path, replace: dict[str, bytes]) -> Path:
    """A copy of a model zip with some of its files replaced."""
    with zipfile.ZipFile(original) as old, zipfile.ZipFile(copy, "w") as new:
        for name in old.namelist():
            new.writestr(name, replace.get(name, old.read(name)))
    return copy


class CreatesMarker:
    """A pickle payload: unpickling it creates ``path`` (stands in for arbitrary code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


# ------------------------------------------------------------------------------------------- sources


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """16-unit networks gain nothing from threads, and on a busy 2-core machine the threads of torch's pool wait
    on each other: measured 100x slower SAC updates there with the default of 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ppo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ppo_source")
    return train(parse_config(config_data(root)), console=QUIET).run_dir


@pytest.fixture(scope="module")
def sac_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sac_source")
    return train(parse_config(config_data(root, "sac")), console=QUIET).run_dir


@pytest.fixture(scope="module")
def sources(ppo_source: Path, sac_source: Path) -> dict[str, Path]:
    return {"ppo": ppo_source, "sac": sac_source}


@pytest.fixture(scope="module")
def freeze_runs(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Path]) -> dict[str, Run]:
    """A `freeze: {layers: 1}` run per algorithm (several tests read them)."""
    return {
        algo: run_transfer(
            tmp_path_factory.mktemp(f"{algo}_freeze"), source, {"method": "freeze", "freeze": {"layers": 1}}, algo
        )
        for algo, source in sources.items()
    }


# ------------------------------------------------------------------------------------------- 1. layer groups


def _roles(groups: list[LayerGroup]) -> dict[str, tuple[str, int | None]]:
    return {g.name: (g.role, g.depth) for g in groups}


def test_ppo_layer_groups_are_named_after_sb3_modules(tmp_path: Path, ppo_source: Path) -> None:
    """Users address groups (transfer.freeze.groups, TensorBoard tags) by SB3's own module names."""
    _, model = fresh_model(tmp_path, "ppo", {"method": "finetune"})
    expected = {
        "mlp_extractor.policy_net.0": ("hidden", 0),
        "mlp_extractor.policy_net.2": ("hidden", 1),
        "mlp_extractor.value_net.0": ("hidden", 0),
        "mlp_extractor.value_net.2": ("hidden", 1),
        "action_net": ("head", None),
        "value_net": ("head", None),
        "log_std": ("head", None),
    }
    assert _roles(layer_groups(model.policy)) == expected
    # A saved model (what `sim2real inspect` reads) has the same groups.
    assert _roles(groups_of(list(source_policy(ppo_source).items()))) == expected


def test_sac_layer_groups_are_named_after_sb3_modules(tmp_path: Path) -> None:
    """SAC's actor, both Q-networks and the target critic are separate groups, heads marked as heads."""
    _, model = fresh_model(tmp_path, "sac", {"method": "finetune"})
    groups = _roles(layer_groups(model.policy))
    assert groups["actor.latent_pi.0"] == ("hidden", 0)
    assert groups["actor.latent_pi.2"] == ("hidden", 1)
    assert groups["actor.mu"] == groups["actor.log_std"] == ("head", None)
    assert groups["critic.qf0.0"] == groups["critic.qf1.0"] == ("hidden", 0)
    assert groups["critic.qf0.4"] == groups["critic.qf1.4"] == ("head", None)
    targets = {name for name in groups if name.startswith("critic_target.")}
    assert targets == {f"critic_target.qf{q}.{i}" for q in (0, 1) for i in (0, 2, 4)}
    assert all(groups[name] == ("target", None) for name in targets)


# ------------------------------------------------------------------------------------------- 2. freeze


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_freeze_keeps_frozen_layers_bit_identical_and_out_of_the_optimizer(
    algo: str, sources: dict[str, Path], freeze_runs: dict[str, Run]
) -> None:
    """A frozen layer is exactly the source's after training: no gradient, no Adam moments, no weight decay."""
    run = freeze_runs[algo]
    frozen = FIRST_LAYERS[algo]
    before, after = source_policy(sources[algo]), read_model(run.dir).policy
    for snapshot in run.recorder.snapshots:
        assert snapshot.frozen == frozen
        assert not frozen & snapshot.trainable
        assert not frozen & set(snapshot.optimizer_group), "a frozen group is in an optimizer"
        assert not frozen & snapshot.with_state, "a frozen group has optimizer state"
    for group in frozen:
        assert same(before, after, group), f"{group} moved"
    trained = set(run.recorder.snapshots[-1].optimizer_group)
    assert trained == {g.name for g in run.recorder.groups if g.role in ("hidden", "head")} - frozen
    for group in trained:
        assert not same(before, after, group), f"{group} did not train"
    assert {
        g: s["state"] for g, s in run.json("transfer.json")["groups"].items() if s["state"] == "frozen"
    } == dict.fromkeys(frozen, "frozen")


def test_sac_freeze_keeps_the_target_critic_mirror_of_frozen_layers(
    sources: dict[str, Path], freeze_runs: dict[str, Run]
) -> None:
    """Polyak averaging must not drift the target critic's copy of a frozen critic layer (x(1-tau)+tau x != x)."""
    before, after = source_policy(sources["sac"]), read_model(freeze_runs["sac"].dir).policy
    for q in (0, 1):
        assert same(before, after, f"critic_target.qf{q}.0")
        assert not same(before, after, f"critic_target.qf{q}.2"), "the rest of the target critic still follows"


# ------------------------------------------------------------------------------------------- 3. learning rates


def test_per_layer_learning_rates_survive_the_learning_rate_schedule(tmp_path: Path, ppo_source: Path) -> None:
    """SB3 sets every optimizer group to the scheduled rate before each update; the per-layer scale must hold."""
    total = 512
    data = config_data(tmp_path, transfer={"method": "finetune", "lr_decay": 0.5}, total_timesteps=total)
    data["algo"]["learning_rate"] = {"initial": 1e-3, "final": 0}
    run = _train_recorded(parse_config(data), source=ppo_source)
    level = {"action_net": 0, "value_net": 0, "log_std": 0}
    level |= {f"mlp_extractor.{net}.2": 1 for net in ("policy_net", "value_net")}
    level |= {f"mlp_extractor.{net}.0": 2 for net in ("policy_net", "value_net")}
    updates = [s for s in run.recorder.snapshots if 0 < s.step < total]
    assert [s.step for s in updates] == [128, 256, 384]
    bases = []
    for snapshot in updates:
        base = 1e-3 * (1 - snapshot.step / total)  # SB3's LinearSchedule at this update's progress
        bases.append(base)
        assert snapshot.lr == pytest.approx({g: base * 0.5 ** level[g] for g in level}, rel=1e-12)
    assert bases == sorted(bases, reverse=True) and bases[0] > bases[-1]
    scales = {g: s["lr_scale"] for g, s in run.json("transfer.json")["groups"].items()}
    assert scales == {g: 0.5 ** level[g] for g in level}


# ------------------------------------------------------------------------------------------- 4. progressive


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory: pytest.TempPathFactory, ppo_source: Path) -> Run:
    """Progressive unfreezing on 2 hidden layers: 128 steps per update, one layer down every 256 steps."""
    transfer = {
        "method": "progressive",
        "lr_decay": 0.5,
        "progressive": {"unfreeze_every": 256, "warmup_steps": 256},
    }
    return run_transfer(tmp_path_factory.mktemp("progressive"), ppo_source, transfer, total_timesteps=768)


def test_progressive_unfreezes_heads_then_one_layer_down_at_a_time(progressive_run: Run, ppo_source: Path) -> None:
    """Heads train first; the last hidden layer joins at unfreeze_every, the first at 2x; none moves before."""
    last = {"mlp_extractor.policy_net.2", "mlp_extractor.value_net.2"}
    first = {"mlp_extractor.policy_net.0", "mlp_extractor.value_net.0"}
    source = source_policy(ppo_source)
    snapshots = progressive_run.recorder.snapshots
    assert [s.step for s in snapshots] == [0, 128, 256, 384, 512, 640, 768]
    for snapshot in snapshots[1:]:
        expected = PPO_HEADS | (last if snapshot.step >= 256 else set()) | (first if snapshot.step >= 512 else set())
        assert snapshot.trainable == expected, snapshot.step
        assert set(snapshot.optimizer_group) == expected, snapshot.step
        assert all(name == group for group, name in snapshot.optimizer_group.items())
        for group in (last if snapshot.step < 256 else set()) | (first if snapshot.step < 512 else set()):
            assert same(source, snapshot.weights, group), f"{group} moved while frozen (step {snapshot.step})"
    assert not same(source, snapshots[1].weights, "action_net"), "the heads train from the first update"
    for group in last | first:
        assert not same(source, snapshots[-1].weights, group)
    output = " ".join(progressive_run.output.split())
    assert "step 256: unfroze mlp_extractor.policy_net.2, mlp_extractor.value_net.2" in output
    assert "step 512: unfroze mlp_extractor.policy_net.0, mlp_extractor.value_net.0" in output
    state = progressive_run.json("transfer.json")
    assert {s["state"] for s in state["groups"].values()} == {"trainable"}
    assert state["step"] == 768


def test_warmup_ramps_a_newly_unfrozen_layer_up_to_its_scaled_rate(progressive_run: Run) -> None:
    """A layer that just joined starts below its rate (lr_scale x base) and reaches it after warmup_steps."""
    scaled = 3e-4 * 0.5  # the last hidden layer: level 1
    rates = {s.step: s.lr["mlp_extractor.policy_net.2"] for s in progressive_run.recorder.snapshots if s.step >= 256}
    assert rates[256] < scaled
    assert rates == pytest.approx({256: 0.0, 384: scaled / 2, 512: scaled, 640: scaled, 768: scaled}, rel=1e-12)
    assert list(rates.values()) == sorted(rates.values())


# ------------------------------------------------------------------------------------------- 5. optimizer state


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_fresh_optimizer_state_starts_empty(tmp_path: Path, sources: dict[str, Path], algo: str) -> None:
    """optimizer_state: fresh: the target's Adam knows nothing of the source's updates."""
    config, model = fresh_model(tmp_path, algo, {"method": "finetune", "optimizer_state": "fresh"})
    transfer = Transfer.start(model, config.transfer, algo, read_source(config, sources[algo]))
    assert transfer.optimizers() and all(not o.state for o in transfer.optimizers().values())


def _saved_optimizer_state(algo: str, source: Path, network: str) -> dict[str, dict[str, torch.Tensor]]:
    """The source zip's optimizer state by parameter name, mapped the way SB3 built that optimizer."""
    with zipfile.ZipFile(source / "model.zip") as archive:
        saved = torch.load(io.BytesIO(archive.read(f"{network}.optimizer.pth")), weights_only=True)
    env = gym.make("InvertedDoublePendulum-v5")
    small = {"buffer_size": 1} if algo == "sac" else {"n_steps": 64}
    plain = ALGORITHMS[algo]("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, device="cpu", **small)
    owner = plain.policy if network == "policy" else getattr(plain.policy, network)
    name_of = {id(p): n for n, p in owner.named_parameters()}
    order = [name_of[id(p)] for group in owner.optimizer.param_groups for p in group["params"]]
    env.close()
    return {order[index]: state for index, state in saved["state"].items()}


@pytest.mark.parametrize(("algo", "networks"), [("ppo", ["policy"]), ("sac", ["actor", "critic"])])
def test_source_optimizer_state_gives_each_trainable_parameter_its_adam_moments(
    tmp_path: Path, sources: dict[str, Path], algo: str, networks: list[str]
) -> None:
    """optimizer_state: source: each trainable parameter continues with the source's moments for that parameter
    (with a frozen first layer, so the target's optimizer holds fewer parameters than the source's)."""
    transfer_settings = {"method": "freeze", "freeze": {"layers": 1}, "optimizer_state": "source"}
    config, model = fresh_model(tmp_path, algo, transfer_settings)
    transfer = Transfer.start(model, config.transfer, algo, read_source(config, sources[algo]))
    checked = 0
    for network in networks:
        saved = _saved_optimizer_state(algo, sources[algo], network)
        optimizer = transfer.optimizers()[network]
        owner = model.policy if network == "policy" else getattr(model.policy, network)
        for name, param in owner.named_parameters():
            if not param.requires_grad:
                assert param not in optimizer.state
                continue
            state = optimizer.state[param]
            assert torch.equal(state["exp_avg"], saved[name]["exp_avg"]), name
            assert torch.equal(state["exp_avg_sq"], saved[name]["exp_avg_sq"]), name
            assert float(state["step"]) == float(saved[name]["step"]) > 0
            checked += 1
    assert checked == sum(len(g["params"]) for o in transfer.optimizers().values() for g in o.param_groups)


# ------------------------------------------------------------------------------------------- 6. normalization


def test_target_normalization_starts_from_the_source_statistics(tmp_path: Path, ppo_source: Path) -> None:
    """The source's weights expect its normalized inputs: the target's VecNormalize starts with its statistics."""
    config, model = fresh_model(tmp_path, "ppo", {"method": "finetune"})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    start_transfer(model, config.transfer, read_source(config, ppo_source), RunFolder(run_dir))
    saved = json.loads((ppo_source / "vecnormalize.json").read_text())
    venv = model.get_vec_normalize_env()
    assert venv is not None and venv.training
    for name in ("obs_rms", "ret_rms"):
        rms = getattr(venv, name)
        assert np.array_equal(rms.mean, saved[name]["mean"])
        assert np.array_equal(rms.var, saved[name]["var"])
        assert rms.count == saved[name]["count"]


def test_fixed_normalization_keeps_the_source_statistics_through_training(tmp_path: Path, ppo_source: Path) -> None:
    """normalization: fixed: the target never updates the statistics (nor does its resumed run), so the saved
    ones are the source's."""
    run = run_transfer(tmp_path, ppo_source, {"method": "finetune", "normalization": "fixed"})
    source_stats = json.loads((ppo_source / "vecnormalize.json").read_text())
    for finished in (run, resume(run.dir, 384)):
        target_stats = finished.json("vecnormalize.json")
        assert target_stats["obs_rms"] == source_stats["obs_rms"]
        assert target_stats["ret_rms"] == source_stats["ret_rms"]


# ------------------------------------------------------------------------------------------- 7. safe loading


def test_reading_a_source_never_unpickles_its_data_file(tmp_path: Path, ppo_source: Path) -> None:
    """A model zip's `data` may carry cloudpickled code; reading it as a source must not run it."""
    marker = tmp_path / "payload_ran"
    data = json.loads(zipfile.ZipFile(ppo_source / "model.zip").read("data"))
    data["policy_class"][":serialized:"] = base64.b64encode(cloudpickle.dumps(CreatesMarker(marker))).decode()
    evil = rewrite_zip(ppo_source / "model.zip", tmp_path / "evil.zip", {"data": json.dumps(data).encode()})

    model = read_model(evil)
    assert not marker.exists()
    assert model.algo == "ppo" and model.num_timesteps == 256
    for name, tensor in source_policy(ppo_source).items():
        assert torch.equal(model.policy[name], tensor)

    # The payload is live: stable-baselines3's own loader runs it.
    loaded, _, _ = load_from_zip_file(evil, device="cpu")
    loaded["policy_class"].close()
    assert marker.exists()


def test_weights_that_are_not_plain_tensors_are_refused(tmp_path: Path, ppo_source: Path) -> None:
    """A policy.pth holding a pickled object is refused (weights-only loading), and its code never runs."""
    marker = tmp_path / "payload_ran"
    payload = io.BytesIO()
    torch.save(CreatesMarker(marker), payload)
    evil = rewrite_zip(ppo_source / "model.zip", tmp_path / "evil.zip", {"policy.pth": payload.getvalue()})
    with pytest.raises(Sim2RealError, match="refused to load weights that are not plain tensors"):
        read_model(evil)
    assert not marker.exists()


def test_refusal_of_pickled_weights_is_plain_text(tmp_path: Path, ppo_source: Path) -> None:
    """The refusal is printed as one plain line; terminal escape codes from torch's message do not belong in it."""
    payload = io.BytesIO()
    torch.save(CreatesMarker(tmp_path / "payload_ran"), payload)
    evil = rewrite_zip(ppo_source / "model.zip", tmp_path / "evil.zip", {"policy.pth": payload.getvalue()})
    with pytest.raises(Sim2RealError) as error:
        read_model(evil)
    assert "\x1b" not in str(error.value)


@pytest.mark.parametrize(
    ("member", "content"),
    [("policy.pth", "list of tensors"), ("data", "JSON list")],
)
def test_a_zip_with_safe_but_malformed_contents_is_refused(
    tmp_path: Path, ppo_source: Path, member: str, content: str
) -> None:
    """Files that load without running code but are not a state dict / JSON object end in one error line."""
    if content == "list of tensors":
        buffer = io.BytesIO()
        torch.save([torch.zeros(3)], buffer)
        replacement = buffer.getvalue()
    else:
        replacement = b"[1, 2]"
    odd = rewrite_zip(ppo_source / "model.zip", tmp_path / "odd.zip", {member: replacement})
    with pytest.raises(Sim2RealError, match=r"odd\.zip"):
        read_model(odd)


def test_a_plain_stable_baselines3_zip_works_as_a_source(tmp_path: Path) -> None:
    """A model saved by plain SB3 (no run folder, no statistics) is a source for a config without normalization."""
    env = gym.make("InvertedDoublePendulum-v5")
    plain = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, seed=1, device="cpu")
    plain.save(tmp_path / "plain.zip")
    env.close()
    with pytest.raises(Sim2RealError, match=r"no normalization statistics .* set train\.normalize: null"):
        run_transfer(tmp_path / "normalized", tmp_path / "plain.zip", {"method": "finetune"})
    assert not (tmp_path / "normalized").exists()

    run = run_transfer(tmp_path / "raw", tmp_path / "plain.zip", {"method": "finetune"}, normalize=None)
    state = run.json("transfer.json")
    assert state["new"] == [] and set(state["loaded"]) == set(state["groups"])
    reference = torch.load(run.dir / "source.pth", weights_only=True)
    assert reference.keys() == plain.policy.state_dict().keys()
    assert all(torch.equal(reference[k], v) for k, v in plain.policy.state_dict().items())


def test_pickled_normalization_statistics_need_trust(tmp_path: Path, ppo_source: Path) -> None:
    """A source whose statistics exist only as vecnormalize.pkl is refused unless the user trusts it."""
    source = tmp_path / "source"
    shutil.copytree(ppo_source, source)
    (source / "vecnormalize.json").unlink()
    config = parse_config(config_data(tmp_path / "runs", transfer={"method": "finetune", "normalization": "fixed"}))
    with pytest.raises(Sim2RealError, match=r"vecnormalize\.pkl.*can run code.*trust_source=True"):
        train(config, source=source, console=QUIET)
    assert not (tmp_path / "runs").exists()

    run = _train_recorded(config, source=source, trust_source=True)
    expected = json.loads((ppo_source / "vecnormalize.json").read_text())
    assert run.json("vecnormalize.json")["obs_rms"] == expected["obs_rms"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda state: state.pop("obs_rms"), "no obs_rms"),
        (lambda state: state["obs_rms"].update(mean="zeros"), "obs_rms.mean is zeros, expected a list of numbers"),
        (lambda state: state["obs_rms"]["var"].pop(), "obs_rms: 9 means but 8 variances"),
        (lambda state: state["ret_rms"].update(count=-1), "ret_rms.count is -1, expected a positive number"),
        (lambda state: state["obs_rms"].update(mean=[0.0] * 4, var=[1.0] * 4), "statistics for 4 observation values"),
    ],
    ids=["missing", "wrong type", "lengths", "count", "shape"],
)
def test_malformed_normalization_statistics_are_one_line_naming_the_file(
    tmp_path: Path, ppo_source: Path, cli: Any, change: Callable[[dict], Any], needle: str
) -> None:
    """Statistics a run cannot use are an error naming vecnormalize.json and the problem, for transfer and
    evaluate alike, before anything trains or is written (not a traceback, nor a silent fresh start)."""
    source = tmp_path / "source"
    shutil.copytree(ppo_source, source)
    state = json.loads((source / "vecnormalize.json").read_text())
    change(state)
    (source / "vecnormalize.json").write_text(json.dumps(state))
    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump(config_data(tmp_path / "runs", transfer={"method": "finetune"})))
    for args in (["transfer", str(config), "--source", str(source)], ["evaluate", str(source)]):
        assert_one_line_error(cli(*args), str(source / "vecnormalize.json"), needle)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------- 8. prognet


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_prognet_starts_as_exactly_the_source_policy(tmp_path: Path, sources: dict[str, Path], algo: str) -> None:
    """A progressive net's heads start as [0 | source head]: its actions, values and Q-values are the source's."""
    config, model = fresh_model(tmp_path, algo, {"method": "prognet"})
    Transfer.start(model, config.transfer, algo, read_source(config, sources[algo]))
    source = ALGORITHMS[algo].load(sources[algo] / "model.zip", device="cpu")
    observations = np.random.default_rng(0).normal(size=(64, 9)).astype(np.float32)  # already normalized inputs
    actions, _ = model.predict(observations, deterministic=True)
    expected, _ = source.predict(observations, deterministic=True)
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    obs = torch.as_tensor(observations)
    with torch.no_grad():
        if algo == "ppo":
            torch.testing.assert_close(model.policy.predict_values(obs), source.policy.predict_values(obs))
        else:
            act = torch.as_tensor(expected)
            for critic in ("critic", "critic_target"):
                for q, q_source in zip(
                    getattr(model.policy, critic)(obs, act), getattr(source.policy, critic)(obs, act), strict=True
                ):
                    torch.testing.assert_close(q, q_source)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_prognet_training_leaves_the_source_column_untouched(
    tmp_path: Path, sources: dict[str, Path], algo: str
) -> None:
    """The source column is the source's trunk, bit for bit, after training; the new column and laterals learn."""
    run = run_transfer(tmp_path, sources[algo], {"method": "prognet"}, algo)
    source, after = source_policy(sources[algo]), read_model(run.dir).policy
    trunks = {"ppo": ["mlp_extractor.policy_net", "mlp_extractor.value_net"], "sac": ["actor.latent_pi"]}[algo]
    if algo == "sac":
        trunks += [f"{critic}.qf{q}" for critic in ("critic", "critic_target") for q in (0, 1)]
    for trunk in trunks:
        column = f"{trunk}.0" if ".qf" in trunk else trunk  # a prognet Q-network is Sequential(column, head)
        for layer in (0, 2):
            assert torch.equal(after[f"{column}.source.{layer}.weight"], source[f"{trunk}.{layer}.weight"])
            assert torch.equal(after[f"{column}.source.{layer}.bias"], source[f"{trunk}.{layer}.bias"])
    initial = run.recorder.snapshots[0].weights
    learned = [g for g in run.json("transfer.json")["new"] if not g.startswith("critic_target.")]
    assert any(".lateral." in g for g in learned) and any(".column." in g for g in learned)
    for group in learned:
        assert not same(initial, after, group), f"{group} did not train"


def test_prognet_and_finetune_have_the_same_jumpstart(tmp_path: Path, ppo_source: Path) -> None:
    """Both start from the source policy, so the learning curve's first point (step 0) is the same for both."""
    first = {}
    for method in ("finetune", "prognet"):
        run = run_transfer(tmp_path / method, ppo_source, {"method": method, "eval_episodes": 3}, total_timesteps=128)
        first[method] = run.json("curve.json")["points"][0]
        assert first[method]["step"] == 0
    assert first["prognet"]["mean_reward"] == pytest.approx(first["finetune"]["mean_reward"], rel=1e-4)


# ------------------------------------------------------------------------------------------- 9. spaces


@pytest.fixture(scope="module")
def pendulum_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source trained on InvertedPendulum-v5: 4 observations where the target has 9."""
    data = config_data(tmp_path_factory.mktemp("pendulum"))
    data["env"] = "InvertedPendulum-v5"
    return train(parse_config(data), console=QUIET).run_dir


def test_a_source_for_another_observation_space_is_refused_naming_both(tmp_path: Path, pendulum_source: Path) -> None:
    """Weights for 4 inputs cannot read 9: the error names both spaces and the way out (adapter)."""
    with pytest.raises(Sim2RealError) as error:
        run_transfer(tmp_path / "runs", pendulum_source, {"method": "finetune"})
    message = str(error.value)
    assert "observation space" in message and "(4,)" in message and "(9,)" in message
    assert "transfer.adapter: true" in message
    assert not (tmp_path / "runs").exists()


def test_adapter_reinitializes_only_the_layers_that_do_not_fit(tmp_path: Path, pendulum_source: Path) -> None:
    """With adapter: true the first layers are new and everything above them comes from the source."""
    run = run_transfer(tmp_path, pendulum_source, {"method": "finetune", "adapter": True})
    state = run.json("transfer.json")
    assert state["new"] == ["mlp_extractor.policy_net.0", "mlp_extractor.value_net.0"]
    assert set(state["loaded"]) == {"mlp_extractor.policy_net.2", "mlp_extractor.value_net.2"} | PPO_HEADS
    source = source_policy(pendulum_source)
    for group in state["loaded"]:
        assert same(source, run.recorder.snapshots[0].weights, group)
    assert run.result.num_timesteps == 256


def test_prognet_refuses_a_source_column_that_cannot_take_the_source_weights(
    tmp_path: Path, pendulum_source: Path
) -> None:
    """A progressive net keeps its source column frozen, so a first layer that cannot hold the source's weights
    (other observation space) would stay random for good: refused even with adapter, and nothing is written."""
    with pytest.raises(Sim2RealError, match=r"\(4,\).*\(9,\).*prognet keeps the source column"):
        run_transfer(tmp_path, pendulum_source, {"method": "prognet", "adapter": True})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.yaml"))


def test_prognet_without_hidden_layers_is_refused_in_one_line(tmp_path: Path, ppo_source: Path) -> None:
    """A progressive net needs a hidden layer in its new column; without one the user gets an error, not a crash."""
    data = config_data(tmp_path / "runs", transfer={"method": "prognet"})
    data["algo"]["net_arch"] = []
    with pytest.raises(Sim2RealError, match="hidden layer"):
        train(parse_config(data), source=ppo_source, console=QUIET)


# ------------------------------------------------------------------------------------------- 10. command line


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing source", ["no such file or folder"]),
        ("text file source", ["notes.txt", "not a stable-baselines3 model zip"]),
        ("sac source for ppo", ["is a SAC model but the config trains PPO", "algo.name: sac"]),
        ("unknown freeze group", ["transfer.freeze.groups", "'policy_net.9'", "mlp_extractor.policy_net.2, "]),
        ("freeze beyond the network", ["transfer.freeze.layers: 5", "2 hidden layers", "0 to 2"]),
        ("no source", ["'freeze' needs a source", "--source"]),
    ],
)
def test_transfer_command_refuses_bad_input_in_one_line(
    tmp_path: Path, sources: dict[str, Path], case: str, needles: list[str], cli: Callable[..., CliResult]
) -> None:
    """Every mistake ends in exit code 2 and one error line, and no run folder is written."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_data(tmp_path / "runs")))
    (tmp_path / "notes.txt").write_text("not a model")
    args = {
        "missing source": ["--source", str(tmp_path / "nothing")],
        "text file source": ["--source", str(tmp_path / "notes.txt")],
        "sac source for ppo": ["--source", str(sources["sac"])],
        "unknown freeze group": ["--source", str(sources["ppo"]), "--set", "transfer.freeze.groups=[policy_net.9]"],
        "freeze beyond the network": ["--source", str(sources["ppo"]), "--set", "transfer.freeze.layers=5"],
        "no source": [],
    }[case]
    assert_one_line_error(cli("transfer", str(config), "--method", "freeze", "--no-progress", *args), *needles)
    assert not (tmp_path / "runs").exists(), "nothing may be written for a transfer that cannot run"


# ------------------------------------------------------------------------------------------- 11. resume


def test_resumed_progressive_run_continues_with_its_frozen_layers(tmp_path: Path, ppo_source: Path) -> None:
    """A resumed run continues from its checkpoint with the layers frozen that were frozen there."""
    transfer = {"method": "progressive", "progressive": {"unfreeze_every": 192}, "eval_every": 128}
    first = run_transfer(tmp_path, ppo_source, transfer, total_timesteps=256, checkpoint_every=128)
    assert RunFolder(first.dir).checkpoints()[-1].step == 256

    resumed = resume(first.dir, 640)
    first_layers = {"mlp_extractor.policy_net.0", "mlp_extractor.value_net.0"}  # unfreeze at 384
    start = resumed.recorder.snapshots[0]
    assert start.step == 256
    assert "from step 256" in resumed.output
    assert start.frozen == first_layers
    assert (
        start.trainable
        == set(start.optimizer_group)
        == PPO_HEADS | {"mlp_extractor.policy_net.2", "mlp_extractor.value_net.2"}
    )
    assert all(name == group for group, name in start.optimizer_group.items())
    source = source_policy(ppo_source)
    for group in first_layers:
        assert same(source, start.weights, group)
    assert {s.step: first_layers <= s.trainable for s in resumed.recorder.snapshots} == {
        256: False,
        384: True,
        512: True,
        640: True,
    }
    assert resumed.result.num_timesteps == 640
    state = resumed.json("transfer.json")
    assert state["step"] == 640 and {s["state"] for s in state["groups"].values()} == {"trainable"}
    steps = [p["step"] for p in resumed.json("curve.json")["points"]]
    assert steps[0] == 0 and steps[-1] == 640 and steps == sorted(set(steps))


@pytest.fixture(scope="module")
def three_layer_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = config_data(tmp_path_factory.mktemp("three_layers"))
    data["algo"]["net_arch"] = [16, 16, 16]
    return train(parse_config(data), console=QUIET).run_dir


@pytest.mark.parametrize("layers", [2, 3])
def test_resume_after_two_unfreezings_keeps_each_layer_in_its_own_optimizer_group(
    tmp_path: Path, ppo_source: Path, three_layer_source: Path, layers: int
) -> None:
    """A checkpoint taken after two layers unfroze resumes with each optimizer group holding its own layer
    (its own name, lr_scale and Adam moments)."""
    source = ppo_source if layers == 2 else three_layer_source
    transfer = {"method": "progressive", "lr_decay": 0.5, "progressive": {"unfreeze_every": 128}}
    data = config_data(tmp_path, transfer=transfer, total_timesteps=256, checkpoint_every=128)
    data["algo"]["net_arch"] = [16] * layers
    first = _train_recorded(parse_config(data), source=source)
    resumed = resume(first.dir, 384)
    start = resumed.recorder.snapshots[0]
    assert all(name == group for group, name in start.optimizer_group.items()), start.optimizer_group


# ------------------------------------------------------------------------------------------- 12. TensorBoard


def test_tensorboard_holds_the_transfer_curves_and_hparams(freeze_runs: dict[str, Run], ppo_source: Path) -> None:
    """Users compare transfer runs in TensorBoard: the groups' state, learning rates, drift, jumpstart, method."""
    run = freeze_runs["ppo"]
    accumulator = events(run.dir)
    scalars = set(accumulator.Tags()["scalars"])
    groups = [g.name for g in run.recorder.groups]
    frozen = FIRST_LAYERS["ppo"]
    for group in groups:
        for metric in ("lr", "weight_drift", "frozen"):
            assert f"transfer/{metric}/{group}" in scalars, (metric, group)
        assert accumulator.Scalars(f"transfer/frozen/{group}")[0].value == float(group in frozen)
        assert accumulator.Scalars(f"transfer/weight_drift/{group}")[0].value == 0.0  # the source's weights
        rates = [e.value for e in accumulator.Scalars(f"transfer/lr/{group}")]
        assert rates and all(rate == (0.0 if group in frozen else pytest.approx(3e-4)) for rate in rates), rates

    trainable = accumulator.Scalars("transfer/trainable_params")[0]
    assert trainable.step == 0
    assert trainable.value == sum(g.numel for g in run.recorder.groups if g.name not in frozen)

    curve = run.json("curve.json")["points"]
    logged = accumulator.Scalars("transfer/target_return")
    assert [e.step for e in logged] == [p["step"] for p in curve]  # the learning curve, from step 0
    assert [e.value for e in logged] == pytest.approx([p["mean_reward"] for p in curve])
    assert accumulator.Scalars("transfer/jumpstart")[-1].value == pytest.approx(curve[0]["mean_reward"])

    plugins = accumulator.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["transfer/method"].string_value == "freeze"
    assert start.session_start_info.group_name.startswith("freeze heavy s0 (")
    # The source as a path from the run folder, the same on any machine.
    source = start.session_start_info.hparams["transfer/source"].string_value
    assert not Path(source).is_absolute() and (run.dir / source).resolve() == (ppo_source / "model.zip").resolve()
    assert "_hparams_/experiment" not in plugins  # TensorBoard infers the union of every run's columns


def test_tensorboard_has_the_final_weight_drift(freeze_runs: dict[str, Run], ppo_source: Path) -> None:
    """The drift curve ends at the final step with the final distance from the source's weights."""
    run = freeze_runs["ppo"]
    drift = events(run.dir).Scalars("transfer/weight_drift/mlp_extractor.policy_net.2")
    source, final = source_policy(ppo_source), read_model(run.dir).policy
    distance = (
        sum(float(((final[k] - source[k]) ** 2).sum()) for k in final if k.startswith("mlp_extractor.policy_net.2."))
        ** 0.5
    )
    assert drift[-1].step == run.result.num_timesteps
    assert drift[-1].value == pytest.approx(distance, rel=1e-5) and distance > 0


# ------------------------------------------------------------------------------------------- 13. inspect


def _inspect_rows(capsys: pytest.CaptureFixture[str], run_dir: Path) -> tuple[dict[str, list[str]], str]:
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 6:
            rows[cells[0]] = cells[1:]
    return rows, out


def test_inspect_lists_each_group_with_shape_size_and_state(
    freeze_runs: dict[str, Run], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sim2real inspect RUN_DIR` shows the names to put in transfer.freeze.groups and what each group is now."""
    monkeypatch.setenv("COLUMNS", "200")
    rows, out = _inspect_rows(capsys, freeze_runs["ppo"].dir)
    assert rows == {
        "log_std": ["head", "1", "1", "trainable", "1"],
        "mlp_extractor.policy_net.0": ["hidden 0", "16x9 + 16", "160", "frozen", "1"],
        "mlp_extractor.policy_net.2": ["hidden 1", "16x16 + 16", "272", "trainable", "1"],
        "mlp_extractor.value_net.0": ["hidden 0", "16x9 + 16", "160", "frozen", "1"],
        "mlp_extractor.value_net.2": ["hidden 1", "16x16 + 16", "272", "trainable", "1"],
        "action_net": ["head", "1x16 + 1", "17", "trainable", "1"],
        "value_net": ["head", "1x16 + 1", "17", "trainable", "1"],
    }
    assert "579 of 899 parameters trainable" in out
    assert "transfer method freeze" in out


def test_inspect_shows_whole_group_names_in_an_80_column_terminal(
    freeze_runs: dict[str, Run], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a standard terminal the group names stay whole: policy_net.0 and policy_net.2 must be told apart."""
    monkeypatch.setenv("COLUMNS", "80")
    _, out = _inspect_rows(capsys, freeze_runs["ppo"].dir)
    for group in ("mlp_extractor.policy_net.0", "mlp_extractor.policy_net.2"):
        assert group in out


# ------------------------------------------------------------------------------------------- 13. fine-tuning remedies


def started(tmp_path: Path, source: Path, transfer: dict, algo: str = "ppo") -> tuple[Any, Transfer]:
    """A target model right after its transfer setup, as train() sets it up."""
    config, model = fresh_model(tmp_path, algo, transfer)
    (tmp_path / "run").mkdir()
    return model, start_transfer(model, config.transfer, read_source(config, source), RunFolder(tmp_path / "run"))


@pytest.mark.parametrize(("action_std", "expected"), [("initial", 1.0), (0.5, 0.5)])
def test_action_std_sets_ppo_exploration_at_transfer(
    tmp_path: Path, ppo_source: Path, action_std: Any, expected: float
) -> None:
    """The source's std is whatever it shrank to; action_std sets it (initial: the algorithm's log_std_init)."""
    model, _ = started(tmp_path, ppo_source, {"method": "finetune", "action_std": action_std})
    assert torch.allclose(model.policy.log_std.exp(), torch.full_like(model.policy.log_std, expected))


def test_reset_entropy_restarts_sac_temperature_and_its_optimizer(tmp_path: Path, sac_source: Path) -> None:
    model, _ = started(tmp_path, sac_source, {"method": "finetune", "reset_entropy": True}, "sac")
    assert float(model.log_ent_coef.detach()) == 0.0
    assert not model.ent_coef_optimizer.state  # no Adam moments carried over


def test_shrink_perturb_blends_trainable_weights_and_keeps_frozen_ones(tmp_path: Path, ppo_source: Path) -> None:
    """a x source + (1 - a) x the target's fresh init for what trains; a frozen layer stays the source's."""
    _, fresh = fresh_model(tmp_path / "fresh", "ppo", {"method": "freeze"})  # the same seed draws the same init
    model, _ = started(tmp_path, ppo_source, {"method": "freeze", "shrink_perturb": 0.25})
    source, initial, after = source_policy(ppo_source), fresh.policy.state_dict(), model.policy.state_dict()
    assert same(source, after, "mlp_extractor.policy_net.0")  # frozen
    for name in ("mlp_extractor.policy_net.2.weight", "action_net.weight", "log_std"):
        assert torch.allclose(after[name], 0.25 * source[name] + 0.75 * initial[name]), name


def test_recalibrate_reestimates_observation_statistics_on_the_target(tmp_path: Path, ppo_source: Path) -> None:
    """Carried statistics barely move; recalibration replaces them with the target's, measured while the source
    policy acts, and keeps updating afterwards. reset_returns starts the return statistics afresh."""
    settings = {"method": "finetune", "normalization": "recalibrate", "recalibration_steps": 64, "reset_returns": True}
    model, transfer = started(tmp_path, ppo_source, settings)
    venv = model.get_vec_normalize_env()
    saved = json.loads((ppo_source / "vecnormalize.json").read_text())
    assert venv.training
    assert transfer.recalibration_steps == 64
    assert venv.obs_rms.count == pytest.approx(64 + 2 + 1e-4)  # 2 envs: the first observations count too
    assert not np.allclose(venv.obs_rms.mean, saved["obs_rms"]["mean"])
    assert venv.ret_rms.count == pytest.approx(1e-4)


@pytest.mark.parametrize("kept", [True, False])
@pytest.mark.parametrize("reset_std", [True, False])
def test_the_auto_recipe_decides_each_remedy_by_what_it_measured_on_the_target(
    tmp_path: Path, ppo_source: Path, monkeypatch: pytest.MonkeyPatch, kept: bool, reset_std: bool
) -> None:
    """recipe auto (the default) decides each remedy on its own: the source's mean action on the carried and on
    the recalibrated statistics (new statistics stand only if they score more), then its stochastic policy with
    its own std and with the reset one (the reset stands unless it costs the start its return). The verdicts are
    forced here, the rollouts are real; what is not kept is plain's. Both checks are in transfer.json, and their
    steps are counted."""
    monkeypatch.setattr(RecipeCheck, "works", property(lambda self: False))
    monkeypatch.setattr(RecipeCheck, "kept", property(lambda self: kept))
    monkeypatch.setattr(RecipeCheck, "reset_std", property(lambda self: reset_std))
    model, transfer = started(tmp_path, ppo_source, {"method": "finetune", "recipe": "auto", "recalibration_steps": 64})
    check = transfer.recipe_check
    assert check is not None and min(check.episodes) >= CHECK_EPISODES
    assert check.std_kept is not None and check.std_reset is not None
    assert transfer.recalibration_steps >= 4 * 32  # the recalibration, then four sides of half its steps at least
    assert json.loads((tmp_path / "run" / "transfer.json").read_text())["recipe_check"] == check.as_dict()
    # A run's config.yaml holds the filled values as if they were set: run again, it is checked again.
    saved = {"method": "finetune", "recipe": "auto", "recalibration_steps": 64, "action_std": "initial",
             "normalization": "recalibrate", "reset_returns": True}  # fmt: skip
    (tmp_path / "again").mkdir()
    _, again = started(tmp_path / "again", ppo_source, saved)
    assert again.recipe_check is not None and again.settings.recipe == ("auto" if kept or reset_std else "plain")
    venv = model.get_vec_normalize_env()
    saved = json.loads((ppo_source / "vecnormalize.json").read_text())
    log_std = model.policy.log_std.detach()
    if kept:
        assert transfer.settings.normalization == "recalibrate"
        assert not np.allclose(venv.obs_rms.mean, saved["obs_rms"]["mean"])
        assert venv.ret_rms.count == pytest.approx(1e-4)
    else:
        assert transfer.settings.normalization == "update" and not transfer.settings.reset_returns
        assert np.allclose(venv.obs_rms.mean, saved["obs_rms"]["mean"])
        assert venv.ret_rms.count == pytest.approx(saved["ret_rms"]["count"])
    if reset_std:
        assert transfer.settings.action_std == "initial" and torch.all(log_std == 0.0)  # std 1.0, the initial one
    else:
        assert transfer.settings.action_std is None and torch.equal(log_std, source_policy(ppo_source)["log_std"])
    assert venv.training


def test_a_source_that_works_on_the_target_keeps_its_start_whole(
    tmp_path: Path, ppo_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipe auto measures the source's mean action on its own statistics first; where that returns at least
    HOME_SHARE of the source's return at home (its run's final evaluation), nothing is remedied and nothing
    more is spent: the statistics and the std are the source's, the recipe is plain, and the steps counted are
    that one measurement's."""
    monkeypatch.setattr(RecipeCheck, "works", property(lambda self: True))
    model, transfer = started(tmp_path, ppo_source, {"method": "finetune", "recipe": "auto", "recalibration_steps": 64})
    check = transfer.recipe_check
    home = json.loads((ppo_source / "eval.json").read_text())["domains"]["source"]["mean_reward"]
    assert check is not None and check.home == pytest.approx(home)
    assert check.recalibrated is None and check.std_kept is None and check.episodes[1] == 0
    assert transfer.settings.recipe == "plain" and transfer.settings.normalization == "update"
    assert transfer.settings.action_std is None and not transfer.settings.reset_returns
    venv = model.get_vec_normalize_env()
    saved = json.loads((ppo_source / "vecnormalize.json").read_text())
    assert np.allclose(venv.obs_rms.mean, saved["obs_rms"]["mean"])
    assert torch.equal(model.policy.log_std.detach(), source_policy(ppo_source)["log_std"])
    assert 0 < transfer.recalibration_steps < 64  # one side of half the recalibration's steps, no recalibration
    assert json.loads((tmp_path / "run" / "transfer.json").read_text())["recipe_check"]["source_works"] is True


def test_a_source_works_where_it_keeps_half_its_home_return() -> None:
    """HOME_SHARE of the home return, measured: Hopper's randomized source on heavy_slippery works (88%), its
    nominal source does not (5%); without a positive home return, every remedy is checked."""
    assert RecipeCheck(664.0, None, (4, 0), home=755.0).works
    assert not RecipeCheck(155.0, None, (8, 0), home=3295.0).works
    assert not RecipeCheck(155.0, None, (8, 0)).works and not RecipeCheck(5.0, None, (8, 0), home=-10.0).works
    assert RecipeCheck.of(RecipeCheck(664.0, None, (4, 0), home=755.0).as_dict()).works


def test_the_std_check_keeps_a_working_start_and_resets_a_failing_one() -> None:
    """The std reset stands unless it costs the stochastic start more than STD_TOLERANCE of its return."""
    assert not RecipeCheck(1248.0, 1300.0, (2, 2), std_kept=1200.0, std_reset=150.0).reset_std  # a gait it breaks
    assert RecipeCheck(232.0, 228.0, (2, 2), std_kept=230.0, std_reset=180.0).reset_std  # fails either way
    assert RecipeCheck(-50.0, -40.0, (2, 2), std_kept=-60.0, std_reset=-80.0).reset_std  # within 50% of |-60|
    assert not RecipeCheck(1.0, 2.0, (2, 2)).reset_std  # no std in question (SAC, or action_std unset)


def test_a_resumed_auto_run_keeps_what_its_check_decided(tmp_path: Path, ppo_source: Path) -> None:
    """The check runs once, at the run's start; a resume (to a larger budget) keeps its record in transfer.json."""
    run = run_transfer(tmp_path, ppo_source, {"method": "finetune", "recipe": "auto", "recalibration_steps": 64})
    decided = json.loads((run.dir / "transfer.json").read_text())["recipe_check"]
    assert decided is not None
    resume(run.dir, 384)
    assert json.loads((run.dir / "transfer.json").read_text())["recipe_check"] == decided


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("method", ["finetune", "prognet"])
def test_compensated_recalibration_keeps_the_source_policy_on_the_new_statistics(
    tmp_path: Path, sources: dict[str, Path], algo: str, method: str
) -> None:
    """New statistics under the old weights would make the source act differently from step 0; compensate
    rewrites the input layers so that on any raw observation the target acts (and values) as the source did."""
    settings = {"method": method, "normalization": "recalibrate", "recalibration_steps": 64}
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    compensated, _ = started(tmp_path / "on", sources[algo], {**settings, "compensate": True}, algo)
    uncompensated, _ = started(tmp_path / "off", sources[algo], settings, algo)
    source = ALGORITHMS[algo].load(sources[algo] / "model.zip", device="cpu")
    saved = json.loads((sources[algo] / "vecnormalize.json").read_text())["obs_rms"]
    raw = np.random.default_rng(0).normal(saved["mean"], np.sqrt(saved["var"]), size=(64, 9))

    def acts(model: Any, mean: Any, var: Any) -> np.ndarray:
        obs = np.clip((raw - np.asarray(mean)) / np.sqrt(np.asarray(var) + 1e-8), -10, 10).astype(np.float32)
        return model.predict(obs, deterministic=True)[0]

    expected = acts(source, saved["mean"], saved["var"])
    for model, close in ((compensated, True), (uncompensated, False)):
        rms = model.get_vec_normalize_env().obs_rms
        assert not np.allclose(rms.mean, saved["mean"])  # the statistics did move
        assert np.allclose(acts(model, rms.mean, rms.var), expected, atol=1e-4) == close


@pytest.mark.parametrize(
    ("algo", "transfer", "needle"),
    [
        ("ppo", {"action_std": -0.5}, "transfer.action_std"),
        ("sac", {"action_std": 0.5}, "transfer.action_std: SAC's action std depends on the state"),
        ("ppo", {"reset_entropy": True}, "transfer.reset_entropy: only for SAC"),
        ("ppo", {"shrink_perturb": 1.5}, "transfer.shrink_perturb"),
    ],
)
def test_remedy_settings_out_of_range_or_for_another_algorithm_are_refused(
    tmp_path: Path, algo: str, transfer: dict, needle: str
) -> None:
    with pytest.raises(Sim2RealError, match=re.escape(needle)):
        parse_config(config_data(tmp_path, algo, {"method": "finetune", **transfer}))


def test_recalibrate_without_normalization_is_refused(tmp_path: Path) -> None:
    data = config_data(tmp_path, "ppo", {"method": "finetune", "normalization": "recalibrate"}, normalize=None)
    with pytest.raises(Sim2RealError, match=r"recalibrate needs train\.normalize"):
        parse_config(data)


def test_a_run_with_the_remedies_logs_them_to_tensorboard(tmp_path: Path, ppo_source: Path) -> None:
    """The remedies run inside train() and show in TensorBoard: the std it explores with, the recalibration."""
    settings = {"method": "finetune", "action_std": "initial", "normalization": "recalibrate",
                "recalibration_steps": 64, "shrink_perturb": 0.8, "eval_every": 128}  # fmt: skip
    run = run_transfer(tmp_path, ppo_source, settings)
    scalars = events(run.dir)
    assert scalars.Scalars("transfer/action_std")[0].value == pytest.approx(1.0)
    assert scalars.Scalars("transfer/recalibration_steps")[0].value == 64
    assert [p["step"] for p in run.json("curve.json")["points"]] == [0, 128, 256]


ACTOR = {"mlp_extractor.policy_net.0", "mlp_extractor.policy_net.2", "action_net", "log_std"}


def test_critic_warmup_trains_the_value_function_alone_first(tmp_path: Path, ppo_source: Path) -> None:
    """The first 128 target steps update the critic only: the actor and its std are the source's until then."""
    settings = {"method": "finetune", "critic_warmup": {"steps": 128}, "eval_every": 128}
    run = run_transfer(tmp_path, ppo_source, settings, total_timesteps=384)
    source = source_policy(ppo_source)
    by_step = {s.step: s for s in run.recorder.snapshots}
    assert by_step[128].frozen == ACTOR
    assert all(same(source, by_step[128].weights, group) for group in ACTOR)
    assert not same(source, by_step[128].weights, "value_net")  # the critic learnt
    assert by_step[256].frozen == set() and not same(source, by_step[256].weights, "action_net")
    assert "critic warm-up over" in run.output
    assert events(run.dir).Scalars("transfer/critic_warmup")[0].value == 1.0


def test_critic_warmup_ends_early_once_the_value_function_explains_enough(tmp_path: Path, ppo_source: Path) -> None:
    warmup = {"steps": 512, "explained_variance": -1e9, "fresh_value_head": True}
    run = run_transfer(tmp_path, ppo_source, {"method": "finetune", "critic_warmup": warmup}, total_timesteps=640)
    by_step = {s.step: s for s in run.recorder.snapshots}
    assert not same(source_policy(ppo_source), by_step[0].weights, "value_net")  # a fresh value head
    assert by_step[128].frozen == ACTOR
    assert by_step[256].frozen == set()  # the first update's explained variance ended it
    assert run.json("transfer.json")["warmup_ended"] == 256


SAC_ACTOR = {"actor.latent_pi.0", "actor.latent_pi.2", "actor.mu", "actor.log_std"}


def test_sac_critic_warmup_fills_the_buffer_with_the_source_policy_and_trains_the_critic_alone(
    tmp_path: Path, sac_source: Path
) -> None:
    """SAC: the source policy acts from the first step (not SB3's uniform random actions until learning_starts)
    and until step 128 only the critics learn; then the actor trains too."""
    model, transfer = started(tmp_path, sac_source, {"method": "finetune", "critic_warmup": {"steps": 128}},
                              "sac")  # fmt: skip
    assert transfer.held == SAC_ACTOR and model.learning_starts > model.num_timesteps
    model._last_obs = model.env.reset()
    torch.manual_seed(0)
    _, buffer_action = model._sample_action(model.learning_starts)
    torch.manual_seed(0)
    policy_action, _ = model.predict(model._last_obs, deterministic=False)
    assert np.allclose(buffer_action, model.policy.scale_action(policy_action))

    settings = {"method": "finetune", "critic_warmup": {"steps": 128}, "eval_every": 128}
    run = run_transfer(tmp_path / "run", sac_source, settings, "sac", total_timesteps=384)
    source = source_policy(sac_source)
    by_step = {s.step: s for s in run.recorder.snapshots}
    assert by_step[128].frozen == SAC_ACTOR
    assert all(same(source, by_step[128].weights, group) for group in SAC_ACTOR)
    assert not same(source, by_step[128].weights, "critic.qf0.0")  # the critic learnt
    assert by_step[256].frozen == set() and not same(source, by_step[256].weights, "actor.mu")
    assert "critic warm-up over" in run.output
    assert events(run.dir).Scalars("transfer/critic_warmup")[0].value == 1.0


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_a_run_resumed_during_its_critic_warmup_holds_the_actor_until_the_warmup_ends(
    tmp_path: Path, sources: dict[str, Path], algo: str
) -> None:
    """Resumed from a checkpoint taken during the warm-up, the actor is still held, then released on time."""
    transfer = {"method": "finetune", "critic_warmup": {"steps": 192}, "eval_every": 128}
    first = run_transfer(tmp_path, sources[algo], transfer, algo, total_timesteps=256, checkpoint_every=128)
    checkpoints = RunFolder(first.dir).checkpoints()
    assert [c.step for c in checkpoints] == [128, 256]
    shutil.rmtree(checkpoints[-1].path)  # as if it had stopped after step 128

    resumed = resume(first.dir, 384)
    held = ACTOR if algo == "ppo" else SAC_ACTOR
    by_step = {s.step: s for s in resumed.recorder.snapshots}
    assert by_step[128].frozen == held
    assert all(same(source_policy(sources[algo]), by_step[128].weights, group) for group in held)
    assert held <= by_step[256].trainable and not by_step[256].frozen
    # PPO checks after each 128-step rollout; SAC after every step of its 2 envs.
    assert resumed.json("transfer.json")["warmup_ended"] == (256 if algo == "ppo" else 194)


@pytest.mark.parametrize(
    ("algo", "warmup", "needle"),
    [
        ("sac", {"steps": 64, "explained_variance": 0.5}, "transfer.critic_warmup.explained_variance: PPO only"),
        ("sac", {"steps": 64, "fresh_value_head": True}, "transfer.critic_warmup.fresh_value_head: PPO only"),
        ("ppo", {"steps": 256}, "transfer.critic_warmup.steps: 256 is not shorter than the budget"),
    ],
)
def test_critic_warmup_out_of_place_is_refused(tmp_path: Path, algo: str, warmup: dict, needle: str) -> None:
    with pytest.raises(Sim2RealError, match=re.escape(needle)):
        parse_config(config_data(tmp_path, algo, {"method": "finetune", "critic_warmup": warmup}))


def test_anchor_keeps_the_policy_near_the_source_and_decays(tmp_path: Path, ppo_source: Path) -> None:
    """A KL(source || current) penalty holds the actor near the source's while its weight lasts; TensorBoard
    shows the KL and the weight falling to zero over its share of the budget."""
    plain = run_transfer(tmp_path / "plain", ppo_source, {"method": "finetune"}, total_timesteps=384)
    anchored = run_transfer(tmp_path / "anchored", ppo_source,
                            {"method": "finetune", "anchor": {"weight": 1000.0, "decay": 1.0}}, total_timesteps=384)  # fmt: skip
    source = source_policy(ppo_source)

    def drift(run: Run) -> float:
        after = run.recorder.snapshots[-1].weights
        return float(sum(torch.sum((after[k] - source[k]) ** 2) for k in ("action_net.weight", "log_std")))

    assert drift(anchored) < 0.5 * drift(plain)
    scalars = events(anchored.dir)
    weights = [e.value for e in scalars.Scalars("transfer/anchor_weight")]
    assert weights[0] == pytest.approx(1000.0) and weights[-1] < weights[0]
    assert "transfer/anchor_kl" in scalars.Tags()["scalars"]


def test_the_anchor_holds_to_what_the_source_did_on_recalibrated_statistics(tmp_path: Path, ppo_source: Path) -> None:
    """With recalibrated statistics and no compensation, the trained policy is the perturbed source, but the
    anchor's frozen copy acts on any raw observation as the source did on its own statistics (kept in anchor.pth
    for a resumed run)."""
    settings = {"method": "finetune", "normalization": "recalibrate", "recalibration_steps": 64,
                "anchor": {"weight": 1.0}}  # fmt: skip
    model, transfer = started(tmp_path, ppo_source, settings)
    source = ALGORITHMS["ppo"].load(ppo_source / "model.zip", device="cpu")
    saved = json.loads((ppo_source / "vecnormalize.json").read_text())["obs_rms"]
    raw = np.random.default_rng(0).normal(saved["mean"], np.sqrt(saved["var"]), size=(64, 9))

    def normalized(mean: Any, var: Any) -> torch.Tensor:
        return torch.as_tensor(np.clip((raw - np.asarray(mean)) / np.sqrt(np.asarray(var) + 1e-8), -10, 10),
                               dtype=torch.float32)  # fmt: skip

    def mean_action(policy: Any, obs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return policy.get_distribution(obs).distribution.mean.numpy()

    rms = model.get_vec_normalize_env().obs_rms
    expected = mean_action(source.policy, normalized(saved["mean"], saved["var"]))
    assert transfer.anchor is not None
    assert np.allclose(mean_action(transfer.anchor.source, normalized(rms.mean, rms.var)), expected, atol=1e-4)
    assert not np.allclose(mean_action(model.policy, normalized(rms.mean, rms.var)), expected, atol=1e-4)
    stored = torch.load(tmp_path / "run" / "anchor.pth", weights_only=True)
    held = transfer.anchor.source.state_dict()
    assert all(torch.equal(held[name], value) for name, value in stored.items())


@pytest.mark.parametrize(
    ("algo", "transfer", "needle"),
    [
        ("sac", {"method": "finetune", "anchor": {"weight": 1.0}}, "transfer.anchor: PPO only"),
        ("ppo", {"method": "scratch", "anchor": {"weight": 1.0}}, "transfer.anchor: method scratch has no source"),
        ("ppo", {"method": "finetune", "anchor": {"weight": -1.0}}, "transfer.anchor.weight"),
    ],
)
def test_anchor_out_of_place_is_refused(tmp_path: Path, algo: str, transfer: dict, needle: str) -> None:
    with pytest.raises(Sim2RealError, match=re.escape(needle)):
        parse_config(config_data(tmp_path, algo, transfer))


# ------------------------------------------------------------------------------------------- plain SB3


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("method", ["scratch", "finetune", "freeze", "progressive"])
def test_a_transfer_runs_zip_loads_in_plain_stable_baselines3_with_the_same_actions(
    tmp_path: Path, sources: dict[str, Path], algo: str, method: str
) -> None:
    """The zip's optimizer state is in SB3's own layout (one group, every parameter), whatever per-layer groups
    the run trained with: ``PPO.load``/``SAC.load`` read it, with its Adam moments, and act as the run does."""
    settings = {"method": method, "progressive": {"unfreeze_every": 128}}
    run = run_transfer(tmp_path, None if method == "scratch" else sources[algo], settings, algo)
    plain = {"ppo": PPO, "sac": SAC}[algo].load(run.dir / "model.zip", device="cpu")
    ours, _ = load_policy(load_run_config(run.dir), run.dir)
    observations = np.random.default_rng(0).normal(size=(32, *plain.observation_space.shape)).astype(np.float32)
    assert np.array_equal(plain.predict(observations, deterministic=True)[0],
                          ours.predict(observations, deterministic=True)[0])  # fmt: skip
    optimizers = [plain.policy.optimizer] if algo == "ppo" else [plain.actor.optimizer, plain.critic.optimizer]
    assert all(len(o.state) > 0 for o in optimizers)  # the moments came along


def test_a_resumed_run_keeps_its_learning_curve_on_the_uninterrupted_grid(tmp_path: Path, ppo_source: Path) -> None:
    """A run stopped between two curve points (its last checkpoint past its last point) resumes without a point
    where it resumed: the next point comes where an uninterrupted run has it, so the curves compare."""
    transfer = {"method": "finetune", "eval_every": 256}
    first = run_transfer(tmp_path, ppo_source, transfer, total_timesteps=384, checkpoint_every=128)
    curve = first.dir / "curve.json"
    data = json.loads(curve.read_text())
    assert [p["step"] for p in data["points"]] == [0, 256, 384]
    data["points"] = data["points"][:2]  # as if it had been stopped at step 384, before the end's point
    curve.write_text(json.dumps(data))
    resumed = resume(first.dir, 768)
    assert [p["step"] for p in resumed.json("curve.json")["points"]] == [0, 256, 512, 768]
