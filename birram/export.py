"""Export a trained model for inference on edge devices.

The exported model maps a batch of inputs to class scores over every output unit, with the
method's own prediction rule (iCaRL's nearest mean, BI-R's encoder and softmax head), and the
units the scenario rules out masked to ``-inf``: class-incremental, every unit learnt;
domain-incremental, the shared units; task-incremental, the units of each input's own task,
whose id is a second input (``task``, int64, one per row). The batch dimension is dynamic.

Formats (``export_formats``):

- ``pt2``: ``model.pt2``, a ``torch.export`` program (``torch.export.load``), the input format
  of ExecuTorch and other ahead-of-time runtimes;
- ``onnx`` (needs ``pip install birram[export]``): ``model.onnx`` (the torch.onnx dynamo
  exporter, opset 20) and ``model.int8.onnx`` (onnxruntime's dynamic quantisation: int8
  weights, activations quantised per batch at run time), for onnxruntime and the runtimes that
  read ONNX.

``export.json`` records what was written and checks it against the model it came from on every
test set: the largest absolute score difference of each format, of the class probabilities
(softmax over the allowed units) and the share of predictions that agree, and the accuracy of
fp32 and int8 side by side. ONNX passes when its score difference is within ``ONNX_TOLERANCE``
times the scores' own size (at least 1): float32 scores of size 100 are only held to about
1e-5 by their rounding, and ONNX Runtime's matrix products round differently from torch's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from birram import io
from birram.errors import ConfigError
from birram.methods.base import Context, Method

FORMATS = ("pt2", "onnx")
ONNX_TOLERANCE = 1e-5  # |ONNX - torch| allowed, per unit of max(1, largest |score|)
ONNX_OPSET = 20
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
MISSING_ONNX = ("ONNX export needs {missing}: pip install birram[export] (or leave ONNX out: "
                "--set 'export_formats=[\"pt2\"]')")


class InferenceModel(nn.Module):
    """``x -> scores`` (task-incremental: ``(x, task) -> scores``), masked as after the last
    task."""

    def __init__(self, method: Method, ctx: Context) -> None:
        super().__init__()
        self.method, self.ctx = method, ctx
        protocol = ctx.protocol
        self.takes_task = protocol.scenario == "task"
        last = protocol.n_tasks - 1
        # [n_tasks, outputs] for task-IL (indexed by each row's task), else [1, outputs]
        allowed = (protocol.task_masks() if self.takes_task
                   else protocol.eval_mask(last, last).unsqueeze(0))
        self.register_buffer("allowed", allowed.to(torch.bool))

    def forward(self, x: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.method.predict(self.ctx, x)
        allowed = self.allowed[task] if self.takes_task else self.allowed[0]
        return scores.masked_fill(~allowed, float("-inf"))


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ONNX_PACKAGES)


def require_onnx() -> None:
    """ConfigError (one line naming the extra) unless the ONNX packages are installed."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(MISSING_ONNX.format(missing=", ".join(missing)))


def check_formats(formats: Sequence[str]) -> None:
    """Called where the config enters: unknown formats and missing packages fail early."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format {unknown[0]!r}; allowed: {', '.join(FORMATS)}")
    if "onnx" in formats:
        require_onnx()


def example_inputs(model: InferenceModel, ctx: Context) -> tuple[torch.Tensor, ...]:
    x = ctx.protocol.tasks[0].x_test[:2].to(ctx.device)
    if model.takes_task:
        return x, torch.zeros(x.shape[0], dtype=torch.long, device=ctx.device)
    return (x,)


def export_program(model: InferenceModel, ctx: Context) -> torch.export.ExportedProgram:
    example = example_inputs(model, ctx)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    shapes = tuple({0: batch} for _ in example)  # one batch dimension shared by every input
    with torch.no_grad():
        return torch.export.export(model, example, dynamic_shapes=shapes)


def export_model(method: Method, ctx: Context, path: Path) -> Path:
    """Write ``path`` (``.pt2``) and return it."""
    program = export_program(InferenceModel(method, ctx).eval(), ctx)
    io.write_with(path, lambda f: torch.export.save(program, f))
    return path


def load_exported(path: Path) -> nn.Module:
    return torch.export.load(str(path)).module()


# --- checking an exported model against the one it came from --------------------------------

def evaluation_inputs(model: InferenceModel, ctx: Context
                ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """``(inputs, labels, task of each row)`` over every test set, on the model's device."""
    tasks = ctx.protocol.tasks
    x = torch.cat([t.x_test for t in tasks]).to(ctx.device)
    y = torch.cat([t.y_test for t in tasks]).cpu()
    task = torch.cat([torch.full((t.x_test.shape[0],), t.index, dtype=torch.long)
                      for t in tasks])
    return ((x, task.to(ctx.device)) if model.takes_task else (x,)), y, task


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|`` over finite scores; inf where the masked (infinite) scores differ."""
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    finite = np.isfinite(a)
    if not np.array_equal(a[~finite], b[~finite]):
        return float("inf")
    return float(np.abs(a[finite] - b[finite]).max(initial=0.0))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Class probabilities over the allowed (finite) units of each row."""
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def agreement(scores: np.ndarray, reference: np.ndarray, classify: bool) -> dict[str, Any]:
    """How closely ``scores`` follow ``reference``: scores, and for classes probabilities and
    predictions."""
    out: dict[str, Any] = {"max_abs_difference": max_abs_difference(scores, reference)}
    if classify:
        out["max_abs_difference_probabilities"] = max_abs_difference(softmax(scores),
                                                                     softmax(reference))
        out["predictions_agree"] = float((scores.argmax(1) == reference.argmax(1)).mean())
    return out


def average_accuracy(scores: np.ndarray, y: torch.Tensor, task: torch.Tensor) -> float:
    """Mean over tasks of each task's test accuracy (the run's ``average_accuracy``)."""
    correct = scores.argmax(1) == y.numpy()
    per_task = [correct[task.numpy() == t].mean() for t in np.unique(task.numpy())]
    return float(np.mean(per_task))


# --- ONNX ----------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters log progress, missing optional operator sets and advice; a run prints its
    own summary."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def to_onnx(program: torch.export.ExportedProgram, takes_task: bool) -> bytes:
    names = ["x", "task"] if takes_task else ["x"]
    with quiet_exporters():
        onnx_program = torch.onnx.export(program, dynamo=True, verbose=False,
                                         opset_version=ONNX_OPSET, input_names=names,
                                         output_names=["scores"])
    return onnx_program.model_proto.SerializeToString()


def quantise_int8(model_bytes: bytes) -> bytes:
    """Dynamic quantisation: int8 weights (per tensor); activations quantised at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, quiet_exporters():
        out = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(onnx.load_from_string(model_bytes), out, weight_type=QuantType.QInt8)
        return out.read_bytes()


def onnx_scores(model_bytes: bytes, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # --threads, as for training
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    feed = {i.name: t.cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}
    return session.run(None, feed)[0]


def export_all(method: Method, ctx: Context, run_dir: Path,
               formats: Sequence[str] = FORMATS) -> dict[str, Any]:
    """Write every format in ``formats`` and ``export.json``; return what it holds."""
    check_formats(formats)
    model = InferenceModel(method, ctx).eval()
    inputs, y, task = evaluation_inputs(model, ctx)
    with torch.no_grad():
        reference = model(*inputs).cpu().numpy()
    classify = ctx.protocol.regression is None  # a regression target has no class accuracy
    report: dict[str, Any] = {
        "scenario": ctx.protocol.scenario,
        "inputs": ["x", "task"] if model.takes_task else ["x"],
        "input_shape": ["batch", *ctx.protocol.input_shape],
        "outputs": {"scores": ["batch", ctx.protocol.n_outputs]},
        "output_names": list(ctx.protocol.output_names),
        "test_samples": int(y.numel()),
        "max_abs_score": float(np.abs(reference[np.isfinite(reference)]).max(initial=0.0)),
        "accuracy": {"torch_fp32": average_accuracy(reference, y, task)} if classify else {},
        "formats": {},
    }
    program = export_program(model, ctx)
    if "pt2" in formats:
        io.write_with(run_dir / "model.pt2", lambda f: torch.export.save(program, f))
        with torch.no_grad():
            loaded = load_exported(run_dir / "model.pt2")(*inputs).cpu().numpy()
        report["formats"]["pt2"] = {"file": "model.pt2",
                                    "bytes": os.path.getsize(run_dir / "model.pt2"),
                                    **agreement(loaded, reference, classify)}
    if "onnx" in formats:
        fp32 = to_onnx(program, model.takes_task)
        int8 = quantise_int8(fp32)
        io.write_bytes(run_dir / "model.onnx", fp32)
        io.write_bytes(run_dir / "model.int8.onnx", int8)
        fp32_scores, int8_scores = onnx_scores(fp32, inputs), onnx_scores(int8, inputs)
        fp32_agreement = agreement(fp32_scores, reference, classify)
        allowed = ONNX_TOLERANCE * max(1.0, report["max_abs_score"])
        report["formats"]["onnx"] = {
            "file": "model.onnx", "bytes": len(fp32), "opset": ONNX_OPSET, **fp32_agreement,
            "tolerance": ONNX_TOLERANCE, "allowed_difference": allowed,
            "within_tolerance": fp32_agreement["max_abs_difference"] <= allowed,
        }
        report["formats"]["onnx_int8"] = {
            "file": "model.int8.onnx", "bytes": len(int8),
            "quantisation": "onnxruntime dynamic: int8 weights per tensor, activations per batch",
            **agreement(int8_scores, reference, classify),
        }
        if classify:
            report["accuracy"]["onnx_fp32"] = average_accuracy(fp32_scores, y, task)
            report["accuracy"]["onnx_int8"] = average_accuracy(int8_scores, y, task)
    io.write_json(run_dir / "export.json", report)
    return report
