"""Checkpoints that cannot run code and cannot be silently corrupt.

A checkpoint is one safetensors file: every tensor of the nested state (model, optimiser,
method, random generators) is stored as a named tensor, and everything else (the nesting, numbers,
strings, ``None``) as JSON in the file's metadata. Reading it never unpickles anything. A SHA-256
digest over the JSON and every tensor's bytes is written into the metadata, so a flipped byte
anywhere is detected and the file is refused rather than used.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from birram import io
from birram.errors import DataError

if TYPE_CHECKING:
    from birram.methods.base import Context, Method
    from birram.train import RunState

FORMAT = "birram-checkpoint-1"
_TENSOR, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able structure; tensors go into ``tensors`` under a generated name."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        # safetensors refuses shared storage: store an independent contiguous copy.
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {_TENSOR: name}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        # Keys stay typed (optimiser state is keyed by int), so store key-value pairs.
        return {_DICT: [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _TUPLE in obj:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        if _FLOAT in obj:
            return float(obj[_FLOAT])
        if _DICT in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj[_DICT]}
        raise ValueError(f"unknown entry {sorted(obj)[:3]}")
    return obj


def _digest(structure: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(structure.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists/tuples of tensors and plain values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    structure = json.dumps(_encode(state, tensors), allow_nan=False)
    metadata = {"format": FORMAT, "structure": structure,
                "sha256": _digest(structure, tensors)}
    io.write_bytes(path, save_tensors(tensors, metadata=metadata))


def _metadata(data: bytes) -> dict[str, str]:
    if len(data) < 8:
        raise ValueError("file is too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("header is longer than the file")
    header = json.loads(data[8 : 8 + n])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise ValueError("no metadata")
    return meta


def load_state(path: Path) -> dict[str, Any]:
    """The state written by :func:`save_state`; DataError naming the file if it is damaged."""
    fix = "delete it to start again from the last completed seed"
    try:
        data = Path(path).read_bytes()
        meta = _metadata(data)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        tensors = load_tensors(data)
        if _digest(meta["structure"], tensors) != meta.get("sha256"):
            raise ValueError("its content does not match the digest written with it")
        state = _decode(json.loads(meta["structure"]), tensors)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error,
            RuntimeError) as err:
        raise DataError(f"checkpoint {path} is damaged ({err}); {fix}") from None
    except Exception as err:  # safetensors raises its own error type for malformed files
        raise DataError(f"checkpoint {path} is damaged ({type(err).__name__}: {err}); "
                        f"{fix}") from None
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path} is damaged (no state); {fix}")
    return state


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names of floating-point tensors in ``state`` holding NaN or infinity."""
    if isinstance(state, torch.Tensor):
        bad = state.is_floating_point() and not bool(torch.isfinite(state).all())
        return [prefix or "tensor"] if bad else []
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return []
    out: list[str] = []
    for key, value in items:
        out += non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return out


# --- a training run at a task boundary ---------------------------------------------------------

# What a checkpoint that does not fit the run it is loaded into raises while being applied.
UNFIT_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def run_state_entry(state: RunState) -> dict[str, Any]:
    """A run's records as a checkpoint stores them (its ``records``, ``random_init`` and
    ``stream_seen`` entries)."""
    return {
        "records": [vars(rec) for rec in state.records],
        "random_init": state.random_init_accuracies,
        "stream_seen": {"outputs": state.stream_seen_outputs, "tasks": state.stream_seen_tasks},
    }


def run_state_from(entry: dict[str, Any], n_tasks: int) -> RunState:
    """The :class:`RunState` :func:`run_state_entry` stored; ValueError if its records do not
    fit an ``n_tasks``-task protocol."""
    from birram.train import RunState, TaskRecord

    records = [TaskRecord(**rec) for rec in entry["records"]]
    if not 1 <= len(records) <= n_tasks or any(len(r.accuracies) != n_tasks for r in records):
        raise ValueError(f"{len(records)} task records for a {n_tasks}-task protocol")
    seen = entry.get("stream_seen") or {}
    return RunState(records=records, random_init_accuracies=list(entry["random_init"]),
                    stream_seen_outputs=seen.get("outputs"), stream_seen_tasks=seen.get("tasks"))


def refuse_non_finite(path: Path, payload: dict[str, Any], fix: str) -> None:
    """DataError if the trained state (``model``, ``method``) in ``payload`` holds NaN or inf."""
    bad = non_finite_tensors({k: payload.get(k) for k in ("model", "method")})
    if bad:
        raise DataError(f"checkpoint {path} holds NaN or infinite values ({bad[0]}); {fix}")


def save_checkpoint(path: Path, method: Method, ctx: Context, state: RunState) -> None:
    save_state(path, {
        "model": ctx.model.state_dict(),
        "optimizer": ctx.optimizer.state_dict() if ctx.optimizer is not None else None,
        "method": method.state_dict(),
        **run_state_entry(state),
        "generator": ctx.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    })


def load_checkpoint(path: Path, method: Method, ctx: Context) -> RunState:
    """Restore a run at its last task boundary; DataError (never a traceback) if unusable."""
    payload = load_state(path)
    fix = f"delete {path} to restart this seed from its first task"
    refuse_non_finite(path, payload, fix)
    try:
        state = run_state_from(payload, ctx.protocol.n_tasks)
        ctx.model.load_state_dict(payload["model"])
        if ctx.optimizer is not None and payload["optimizer"] is not None:
            ctx.optimizer.load_state_dict(payload["optimizer"])
        ctx.task = len(state.records) - 1
        method.load_state_dict(payload["method"], ctx)
        ctx.generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
    except UNFIT_ERRORS as err:
        raise DataError(f"checkpoint {path} does not fit this run ({str(err)[:200]}); "
                        f"{fix}") from None
    return state
