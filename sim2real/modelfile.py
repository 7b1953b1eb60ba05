"""Reading saved models without running code from them.

A stable-baselines3 zip holds a ``data`` file (JSON, where objects JSON cannot hold are cloudpickled) and
``.pth`` files of state dicts. Unpickling ``data`` would run whatever code the file carries, so a source model
is read here with plain ``json`` (only its plain fields: step counts and the spaces' shapes and bounds) and its
weights with torch's weights-only loader. Normalization statistics come from their JSON file (plain
numbers); the pickled file that plain stable-baselines3 writes is read only on explicit trust.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.errors import Sim2RealError
from sim2real.io import atomic_path
from sim2real.runs import MODEL, TRANSFER_STATE, VECNORMALIZE, VECNORMALIZE_JSON, RunFolder


@dataclass
class SpaceSummary:
    """What the source's JSON says of a Box space: shape and bounds (as the text stable-baselines3 writes)."""

    shape: tuple[int, ...]
    low: str
    high: str

    def describe(self) -> str:
        return f"Box(shape={self.shape}, low={self.low}, high={self.high})"


@dataclass
class ModelFile:
    """A model read safely: its algorithm, state dicts, plain metadata and (when saved) normalization."""

    path: Path
    algo: str  # "ppo", "sac" or "recurrent_ppo", told apart by the policy's parameter names
    params: dict[str, dict[str, torch.Tensor]]  # "policy", "policy.optimizer", "actor.optimizer", ...
    variables: dict[str, torch.Tensor]  # pytorch variables such as SAC's log_ent_coef
    num_timesteps: int
    observation: SpaceSummary | None
    action: SpaceSummary | None
    normalization: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # the run folder's config.yaml, when there is one
    transfer_state: dict[str, Any] | None = field(default=None)
    counters: dict[str, int] = field(default_factory=dict)  # SB3's plain-int progress (_n_updates, _episode_num)
    home_return: float | None = None  # a run folder's final return on the domain it trained on

    @property
    def policy(self) -> dict[str, torch.Tensor]:
        return self.params["policy"]


def _space(entry: Any) -> SpaceSummary | None:
    if not isinstance(entry, dict) or "_shape" not in entry:
        return None
    shape = entry["_shape"]
    if isinstance(shape, str):  # older files write the shape as its repr
        shape = json.loads(shape.replace("(", "[").replace(")", "]").replace(",]", "]"))
    return SpaceSummary(tuple(int(n) for n in shape), str(entry.get("low", "?")), str(entry.get("high", "?")))


def _algo_of(policy: dict[str, torch.Tensor], path: Path) -> str:
    if any(key.startswith("critic_target.") for key in policy):
        return "sac"
    if any(key.startswith("lstm_actor.") for key in policy):
        return "recurrent_ppo"
    if any(key.startswith(("mlp_extractor.", "action_net.")) for key in policy):
        return "ppo"
    raise Sim2RealError(f"{path}: not a PPO or SAC model (its policy has neither mlp_extractor nor critic_target)")


def read_normalization(folder: Path, trusted: bool = False) -> dict[str, Any] | None:
    """Normalization statistics saved beside a model: their JSON file, or on trust SB3's pickle."""
    json_path = folder / VECNORMALIZE_JSON
    if json_path.is_file():
        try:
            state = json.loads(json_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise Sim2RealError(f"{json_path}: unreadable normalization statistics ({error})") from None
        problem = _malformed(state)
        if problem:
            raise Sim2RealError(f"{json_path}: malformed normalization statistics ({problem})")
        return cast(dict[str, Any], state)
    pkl = folder / VECNORMALIZE
    if not pkl.is_file():
        return None
    if not trusted:
        raise Sim2RealError(
            f"{pkl}: normalization statistics only as a pickle, which can run code when read; "
            "pass {trust_source} if you trust this file",
            trust_source=True,
        )
    try:
        with pkl.open("rb") as handle:
            venv = pickle.load(handle)
    except Exception as error:  # a foreign pickle can raise anything
        raise Sim2RealError(f"{pkl}: cannot read normalization statistics ({error})") from None
    if not isinstance(venv, VecNormalize):
        raise Sim2RealError(f"{pkl}: not a VecNormalize pickle")
    return normalization_state(venv)


def read_model(path: Path, trusted: bool = False, with_normalization: bool = True) -> ModelFile:
    """Reads a model zip or run folder with weights-only loading (see the module docstring).

    Args:
        path: a stable-baselines3 zip (ours or plain SB3's) or a run folder holding ``model.zip``.
        trusted: allow pickled normalization statistics (``vecnormalize.pkl``) to be read.
        with_normalization: read the normalization statistics saved beside the model at all.
    """
    zip_path, run = RunFolder.of_model(path)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            data = json.loads(archive.read("data").decode()) if "data" in archive.namelist() else {}
        _, loaded, variables = load_from_zip_file(zip_path, load_data=False, device="cpu")
        params = cast(dict[str, dict[str, torch.Tensor]], loaded)
    except (zipfile.BadZipFile, ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Sim2RealError(f"{zip_path}: not a stable-baselines3 model zip ({error})") from None
    except pickle.UnpicklingError as error:
        # torch's message is several paragraphs with terminal bold codes; its first sentence names the culprit.
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first = plain.split(". ", 1)[0].splitlines()[0]
        raise Sim2RealError(f"{zip_path}: refused to load weights that are not plain tensors ({first})") from None
    except (OSError, RuntimeError) as error:
        raise Sim2RealError(f"{zip_path}: cannot read the model ({error})") from None
    if not isinstance(data, dict):
        raise Sim2RealError(f"{zip_path}: not a stable-baselines3 model zip (its data is not a JSON object)")
    if "policy" not in params:
        raise Sim2RealError(f"{zip_path}: not a stable-baselines3 model zip (no policy.pth)")
    for name, state in params.items():
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise Sim2RealError(f"{zip_path}: {name}.pth is not a state dict (a mapping of names to tensors)")
    if not all(isinstance(v, torch.Tensor) for v in params["policy"].values()):
        raise Sim2RealError(f"{zip_path}: policy.pth holds values that are not tensors")
    folder = run.path if run is not None else zip_path.parent
    config = run.saved_config() if run is not None else None
    transfer_state = None
    if (folder / TRANSFER_STATE).is_file():
        try:
            transfer_state = json.loads((folder / TRANSFER_STATE).read_text())
        except (OSError, json.JSONDecodeError):
            transfer_state = None
    steps = data.get("num_timesteps", 0)
    observation = _space(data.get("observation_space"))
    normalization = (
        read_normalization(folder, trusted)
        if with_normalization and (run is not None or zip_path.name == MODEL)
        else None
    )
    if normalization is not None and observation is not None and observation.shape:
        size, expected = observation_size(normalization), int(np.prod(observation.shape))
        if size != expected:
            raise Sim2RealError(
                f"{folder / VECNORMALIZE_JSON}: statistics for {size} observation values, but {zip_path.name} "
                f"takes {expected}"
            )
    return ModelFile(
        path=zip_path,
        algo=_algo_of(params["policy"], zip_path),
        params=params,
        variables=variables or {},
        num_timesteps=steps if isinstance(steps, int) else 0,
        observation=observation,
        action=_space(data.get("action_space")),
        normalization=normalization,
        config=config if isinstance(config, dict) else None,
        transfer_state=transfer_state if isinstance(transfer_state, dict) else None,
        counters={k: v for k in ("_n_updates", "_episode_num") if isinstance(v := data.get(k), int)},
        home_return=_home_return(run, config) if run is not None else None,
    )


def _home_return(run: RunFolder, config: Any) -> float | None:
    """The run's final mean return on the domain it trained on: its source domain, or a transfer run's target."""
    transfer = config.get("transfer") if isinstance(config, dict) else None
    targets = config.get("targets") if isinstance(config, dict) else None
    home = "source"
    if isinstance(transfer, dict):
        only = next(iter(targets)) if isinstance(targets, dict) and len(targets) == 1 else None
        home = transfer.get("target") or only or home
    value = run.read_eval().get(str(home), {}).get("mean_reward")
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


# --------------------------------------------------------------------------------------- normalization


def _malformed(state: Any) -> str | None:
    """What is wrong with saved statistics (see :func:`normalization_state`), or None: what reading them needs."""
    if not isinstance(state, dict):
        return "expected a JSON object"
    for key in ("clip_obs", "epsilon"):
        if key in state and not _finite(state[key]):
            return f"{key} is {state[key]!r}, expected a number"
    sizes = {}
    for name in ("obs_rms", "ret_rms"):
        rms = state.get(name)
        if not isinstance(rms, dict):
            return f"no {name}"
        for key in ("mean", "var"):
            values = rms.get(key)
            values = [values] if name == "ret_rms" and _finite(values) else values
            if not isinstance(values, list) or not values or not all(_finite(v) for v in values):
                return f"{name}.{key} is {str(rms.get(key))[:40]}, expected a list of numbers"
            sizes[f"{name}.{key}"] = len(values)
        if sizes[f"{name}.mean"] != sizes[f"{name}.var"]:
            return f"{name}: {sizes[name + '.mean']} means but {sizes[name + '.var']} variances"
        if not _finite(rms.get("count")) or rms["count"] <= 0:
            return f"{name}.count is {rms.get('count')!r}, expected a positive number"
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


def normalization_state(venv: VecNormalize) -> dict[str, Any]:
    """VecNormalize's statistics and settings as plain JSON numbers (float64 round-trips exactly)."""
    obs_rms: Any = venv.obs_rms  # a dict of them for dict spaces, which the MLP policies here do not take
    return {
        "norm_obs": bool(venv.norm_obs),
        "norm_reward": bool(venv.norm_reward),
        "clip_obs": float(venv.clip_obs),
        "clip_reward": float(venv.clip_reward),
        "gamma": float(venv.gamma),
        "epsilon": float(venv.epsilon),
        "obs_rms": {
            "mean": np.asarray(obs_rms.mean).tolist(),
            "var": np.asarray(obs_rms.var).tolist(),
            "count": float(obs_rms.count),
        },
        "ret_rms": {
            "mean": np.asarray(venv.ret_rms.mean).tolist(),
            "var": np.asarray(venv.ret_rms.var).tolist(),
            "count": float(venv.ret_rms.count),
        },
    }


def apply_normalization_state(venv: VecNormalize, state: dict[str, Any]) -> None:
    """Copies saved statistics into ``venv`` (which keeps its own settings: the target config's)."""
    for name in ("obs_rms", "ret_rms"):
        rms: Any = getattr(venv, name)
        saved = state[name]
        rms.mean = np.asarray(saved["mean"], dtype=np.float64).reshape(np.shape(rms.mean))
        rms.var = np.asarray(saved["var"], dtype=np.float64).reshape(np.shape(rms.var))
        rms.count = float(saved["count"])


def observation_size(state: dict[str, Any]) -> int:
    return int(np.asarray(state["obs_rms"]["mean"]).size)


# --------------------------------------------------------------------------------------- replay buffer

# A replay buffer's contents: plain arrays (numpy's npz, read with allow_pickle=False), not SB3's pickle of the
# whole buffer object, so that resuming a run someone else made runs none of its code.
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    arrays = {name: value for name in _BUFFER_ARRAYS if (value := getattr(buffer, name, None)) is not None}
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """Fills ``buffer`` (built by the run's config, so of the right size and spaces) from ``path``."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            for name in _BUFFER_ARRAYS:
                target = getattr(buffer, name, None)
                if target is None or name not in saved.files:
                    continue
                if saved[name].shape != target.shape:
                    raise Sim2RealError(
                        f"{path}: {name} has shape {saved[name].shape}, this run's buffer {target.shape}"
                    )
                target[...] = saved[name]
            buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise Sim2RealError(f"{path}: unreadable replay buffer ({error})") from None


def restore_model(model: Any, saved: ModelFile) -> None:
    """Puts a checkpoint's model into ``model`` (built by the run's config): weights and optimizer state, SAC's
    temperature, and SB3's progress counters, all from plain tensors and JSON."""
    try:
        model.set_parameters(cast(dict[str, Any], saved.params), exact_match=True, device=model.device)
    except (RuntimeError, ValueError) as error:
        raise Sim2RealError(f"checkpoint {saved.path.parent} does not fit this run's model: {error}") from None
    if "log_ent_coef" in saved.variables and getattr(model, "log_ent_coef", None) is not None:
        model.log_ent_coef.data.copy_(saved.variables["log_ent_coef"].data)
    model.num_timesteps = saved.num_timesteps
    for name, value in saved.counters.items():
        setattr(model, name, value)
