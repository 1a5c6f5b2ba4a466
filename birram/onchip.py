"""Continual learning with the weights on simulated RRAM crossbars.

Two modes, both driven through the one training loop by :class:`birram.train.LoopHooks`, so
every method runs in both without knowing about the chip:

- **program-after-task** (:class:`ProgramAfterTask`): training is digital; after each task the
  trained weights are written onto each of K chip instances (only devices whose level changes
  are rewritten) and every chip is evaluated. The K chips are independent device-variability
  draws (faults, programming noise), so the spread over chips is the chip-to-chip spread of one
  trained network.
- **hardware-aware** (:class:`HardwareAware`): the model itself is deployed; every forward pass
  (training, the replay a generative method draws from its decoder or generator, the frozen
  previous model, evaluation) runs through the noisy crossbar, gradients flow straight-through
  to digital shadow weights, and the chip is reprogrammed every ``reprogram_every`` iterations
  and at the end of each task. One chip per training run.

Every write, its energy, and every analog read are counted in the chip's ledger.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from birram.config import HardwareConfig
from birram.hardware.cells import CellModel
from birram.hardware.chip import ChipConfig, chip_preset
from birram.hardware.deploy import chip_summary, crossbar_layers, deploy, ledger_of, program_model
from birram.hardware.energy import digital_inference_energy
from birram.hardware.ideal_cells import IdealCells
from birram.methods.base import Context, Method
from birram.train import LoopHooks, evaluate


def chip_config(hw: HardwareConfig, instance: int) -> ChipConfig:
    """The chip of instance ``instance``: the preset, the changes, and its own seed."""
    return chip_preset(hw.chip, **hw.changes).replace(seed=instance)


@functools.lru_cache(maxsize=16)
def _cells(kind: str, n_levels: int | None, variability_scale: float,
           params_file: str | None = None) -> CellModel:
    if kind == "ideal":
        return IdealCells(n_levels=n_levels)
    from birram.hardware.rram_cells import rram_cells

    if params_file is None:
        return rram_cells(n_levels=n_levels or 16, variability_scale=variability_scale)
    from birram.rram.param_file import load_param_set

    param_set = load_param_set(params_file)
    return rram_cells(n_levels=n_levels or 16, variability_scale=variability_scale,
                      params=param_set.params,
                      variability=param_set.scaled(variability_scale))


def cells_for(chip: ChipConfig, variability_scale: float = 1.0,
              params_file: str | None = None) -> CellModel:
    """The cell model a chip is built from (RRAM cells are calibrated once and cached);
    ``params_file``: a parameter-set file in place of the filament set."""
    return _cells(chip.cells, chip.n_levels, float(variability_scale), params_file)


def deployed_copy(model: nn.Module, chip: ChipConfig, cells: CellModel) -> nn.Module:
    """A copy of ``model`` on a fresh chip, nothing written yet, in digital mode."""
    return deploy(model, chip, cells, program=False, mode="digital", copy=True)


def load_weights(chip_model: nn.Module, model: nn.Module) -> None:
    """Copy the (digital) model's weights and buffers into the chip model's shadow weights."""
    chip_model.load_state_dict(model.state_dict(), strict=False)


@contextmanager
def using_model(ctx: Context, model: nn.Module, mode: str = "analog") -> Iterator[nn.Module]:
    """Temporarily evaluate through ``model`` (a chip copy, or the model in another mode)."""
    saved_model = ctx.model
    layers = crossbar_layers(model)
    saved_modes = [layer.mode for layer in layers]
    ctx.model = model
    for layer in layers:
        layer.set_mode(mode)
    try:
        yield model
    finally:
        for layer, m in zip(layers, saved_modes):
            layer.set_mode(m)
        ctx.model = saved_model


def evaluate_on(method: Method, ctx: Context, model: nn.Module, trained_up_to: int,
                mode: str = "analog") -> list[float]:
    """Test accuracy of every task through ``model`` in ``mode``, as after ``trained_up_to``."""
    with using_model(ctx, model, mode):
        return evaluate(method, ctx, trained_up_to)


def inference_energy(method: Method, ctx: Context, model: nn.Module) -> dict[str, float]:
    """Analog energy per classified test sample (read + converters), measured by reading the
    whole test set once through the chip, and the same network's digital estimates."""
    ledger = ledger_of(model)
    before = ledger.totals()
    samples = sum(int(t.x_test.shape[0]) for t in ctx.protocol.tasks)
    evaluate_on(method, ctx, model, ctx.protocol.n_tasks - 1)
    after = ledger.totals()
    per = {k: (after[k] - before[k]) / max(samples, 1)
           for k in ("read_energy_j", "dac_energy_j", "adc_energy_j", "inference_energy_j")}
    example = ctx.protocol.tasks[0].x_test[:1]
    with using_model(ctx, model, "digital"):
        estimates = {(p, w): digital_inference_energy(model, p, w, example)
                     for p in ("fp32", "int8") for w in ("sram", "dram")}
    digital = {f"digital_{p}_{w}_j": e["total_j"] for (p, w), e in estimates.items()}
    macs = estimates["fp32", "sram"]["macs"]
    return {f"analog_{k}": v for k, v in per.items()} | digital | {"macs_per_inference": macs}


def bytes_kept(method: Method, ctx: Context) -> int:
    """Bytes a method keeps between tasks besides the model: its own state (buffers, Fisher,
    previous model, generator), or for Joint every past training sample."""
    from birram.methods.joint import Joint

    if isinstance(method, Joint):
        return sum(t.x_train.numel() * t.x_train.element_size()
                   + t.y_train.numel() * t.y_train.element_size() for t in ctx.protocol.tasks)
    total = 0

    def walk(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(digital_state(method.state_dict()))
    return total


# Buffers that describe a chip's devices rather than a network (a deployed copy's state).
CHIP_BUFFERS = frozenset({"g", "target_g", "cell_level", "writes", "stuck", "programmed_at_s",
                          "level_map", "level_g", "w_max", "clock_s", "age_temp_k", "drift_ref",
                          "dac_running", "adc_running"})


def digital_state(obj: Any) -> Any:
    """``obj`` without chip-device buffers: what a digital processor would have to store."""
    if isinstance(obj, dict):
        return {k: digital_state(v) for k, v in obj.items()
                if not (isinstance(k, str) and k.rsplit(".", 1)[-1] in CHIP_BUFFERS)}
    if isinstance(obj, (list, tuple)):
        return [digital_state(v) for v in obj]
    return obj


class ChipHooks(LoopHooks):
    """What both modes share: per-task bookkeeping of writes and energy."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self.device_rows: list[list[list[float]]] = []  # [chip][task] -> accuracy per task
        self.digital_rows: list[list[float]] = []
        self.task_writes: list[list[int]] = []  # [chip][task]
        self.task_write_energy_j: list[list[float]] = []
        self.task_read_energy_j: list[list[float]] = []
        self.extra: dict[str, Any] = {}

    def setup(self, method: Method, ctx: Context) -> None:
        """Called once the method's model and optimiser exist, before the first task."""

    def chip_models(self) -> list[nn.Module]:
        """The deployed models whose chips are summarised; the first also measures energy."""
        raise NotImplementedError

    def finish(self, method: Method, ctx: Context) -> dict[str, Any]:
        """What the run measured on the chip (written to ``hardware.json``)."""
        models = self.chip_models()
        summaries = [chip_summary(model) for model in models]
        self.extra = {
            "energy_per_inference": inference_energy(method, ctx, models[0]),
            "devices": summaries[0]["devices"],
            "writes_max_per_device": [s["writes_max_per_device"] for s in summaries],
            "writes_mean_per_device": [s["writes_mean_per_device"] for s in summaries],
            "stuck_devices": [s["stuck_devices"] for s in summaries],
        }
        return self.result(method, ctx)

    def _start(self, n_chips: int) -> None:
        for rows in (self.device_rows, self.task_writes, self.task_write_energy_j,
                     self.task_read_energy_j):
            rows[:] = [[] for _ in range(n_chips)]

    @staticmethod
    def _ledger_point(model: nn.Module) -> dict[str, float]:
        return ledger_of(model).totals()

    def _record_task(self, k: int, before: dict[str, float], after: dict[str, float]) -> None:
        self.task_writes[k].append(int(after["writes"] - before["writes"]))
        self.task_write_energy_j[k].append(after["write_energy_j"] - before["write_energy_j"])
        self.task_read_energy_j[k].append(after["inference_energy_j"]
                                          - before["inference_energy_j"])

    def result(self, method: Method, ctx: Context) -> dict[str, Any]:
        device = np.array(self.device_rows)  # [chips, tasks, tasks]
        final = device[:, -1, :].mean(1)
        return {
            "mode": self.hw.mode, "chip": self.hw.chip, "changes": self.hw.changes,
            "chip_config": chip_config(self.hw, 1).to_dict(),  # as resolved (seed: instance)
            "chips": len(self.device_rows),
            "device_accuracy_matrices": device.tolist(),
            "device_average_accuracy": final.tolist(),
            "digital_accuracy_matrix": self.digital_rows,
            "digital_average_accuracy": float(np.mean(self.digital_rows[-1])),
            "writes_per_task": self.task_writes,
            "write_energy_per_task_j": self.task_write_energy_j,
            "read_energy_per_task_j": self.task_read_energy_j,
            "bytes_kept_between_tasks": bytes_kept(method, ctx),
            **self.extra,
        }


class ProgramAfterTask(ChipHooks):
    """Mode (a): digital training; after each task, program K chips and evaluate each."""

    def __init__(self, hw: HardwareConfig, cells: CellModel | None = None) -> None:
        super().__init__(hw)
        self.cells = cells
        self.chips: list[nn.Module] = []

    def setup(self, method: Method, ctx: Context) -> None:
        self._start(self.hw.chips)
        self.chips = []
        for k in range(self.hw.chips):
            config = chip_config(self.hw, k + 1)
            cells = self.cells or cells_for(config, self.hw.variability_scale,
                                             self.hw.params_file)
            self.chips.append(deployed_copy(ctx.model, config, cells))

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        self.digital_rows.append(list(accuracies))
        for k, chip in enumerate(self.chips):
            before = self._ledger_point(chip)
            load_weights(chip, ctx.model)
            program_model(chip, only_changed=True)
            self._record_task(k, before, self._ledger_point(chip))
            self.device_rows[k].append(evaluate_on(method, ctx, chip, ctx.task))

    def chip_models(self) -> list[nn.Module]:
        return self.chips


class HardwareAware(ChipHooks):
    """Mode (b): the model lives on one chip; every forward pass is analog."""

    def __init__(self, hw: HardwareConfig, instance: int, cells: CellModel | None = None
                 ) -> None:
        super().__init__(hw)
        self.config = chip_config(hw, instance)
        self.cells = cells or cells_for(self.config, hw.variability_scale, hw.params_file)
        self.models: list[nn.Module] = []

    def setup(self, method: Method, ctx: Context) -> None:
        self._start(1)
        deploy(ctx.model, self.config, self.cells, program=True, mode="analog")
        self.models = [ctx.model]
        generator = getattr(method, "generator", None)
        if isinstance(generator, nn.Module):  # DGR's separate generator: on its own arrays
            deploy(generator, self.config.replace(seed=self.config.seed + 10_000), self.cells,
                   program=True, mode="analog")
            self.models.append(generator)
        # The first programming (at deployment) is part of the cost of learning task 1.
        self._before = {k: 0.0 for k in self._totals()}

    def _totals(self) -> dict[str, float]:
        points = [self._ledger_point(m) for m in self.models]
        return {k: sum(p[k] for p in points) for k in points[0]}

    def step_done(self, ctx: Context, iteration: int) -> None:
        if (iteration + 1) % self.hw.reprogram_every == 0:
            for model in self.models:
                program_model(model, only_changed=True)

    def task_trained(self, method: Method, ctx: Context) -> None:
        for model in self.models:
            program_model(model, only_changed=True)
        after = self._totals()
        self._record_task(0, self._before, after)
        self._before = after
        self.digital_rows.append(evaluate_on(method, ctx, ctx.model, ctx.task, "digital"))

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        self.device_rows[0].append(list(accuracies))
        self._before = self._totals()  # evaluation reads are not the cost of learning

    def chip_models(self) -> list[nn.Module]:
        return self.models[:1]  # the learner's own chip (DGR's generator has a second one)


def hooks_for(hw: HardwareConfig, instance: int = 1) -> ChipHooks:
    if hw.mode == "program-after-task":
        return ProgramAfterTask(hw)
    return HardwareAware(hw, instance)


def validate(hw: HardwareConfig) -> None:
    """ConfigError for an unknown chip preset or a bad chip field, before anything runs."""
    chip_config(hw, 1)

