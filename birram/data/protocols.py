"""Protocols turn a labelled dataset into a sequence of tasks under one scenario.

Labels are remapped once, when the protocol is built, into the model's output space:
- split protocols relabel classes so that task t owns outputs ``[t*k, (t+1)*k)`` in the
  task- and class-incremental scenarios, and ``[0, k)`` in the domain-incremental one;
- permuted protocols give task t the outputs ``[t*C, (t+1)*C)`` (task/class) or ``[0, C)`` (domain).
Which outputs are active when is a boolean mask per task (see :meth:`Protocol.train_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from birram.data.stream import StreamSpec
from birram.data.types import ArrayDataset
from birram.errors import ConfigError

Scenario = Literal["task", "domain", "class"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)


@dataclass(frozen=True)
class Task:
    """One task: inputs as float tensors on the training device, labels in output space."""

    index: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    outputs: tuple[int, ...]  # output units this task's labels use
    class_names: tuple[str, ...]  # names of the dataset classes in this task, in output order


@dataclass(frozen=True)
class RegressionTarget:
    """A real-valued target in place of the class: log10 of each level's value (log10 I_CC in
    A for the compliance datasets), learnt in model units ``(log10 value - centre) / scale``.

    ``centre`` and ``scale`` are the middle and half-width of the level range: a design setting
    of the experiment (the compliance currents it sets), known before any data arrive.
    """

    name: str
    centre: float
    scale: float  # decades per model unit
    log10_levels: tuple[float, ...]  # every level, in the dataset's class order
    level_names: tuple[str, ...]

    def to_decades(self, z: torch.Tensor) -> torch.Tensor:
        """Model units as log10 of the value."""
        return z * self.scale + self.centre

    def nearest_level(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the level nearest to each prediction (model units)."""
        levels = torch.tensor(self.log10_levels, dtype=z.dtype, device=z.device)
        return (self.to_decades(z)[:, None] - levels[None, :]).abs().argmin(1)


@dataclass(frozen=True)
class Protocol:
    name: str
    scenario: Scenario
    tasks: tuple[Task, ...]
    n_outputs: int
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]  # a readable name for each output unit
    # None: labels are classes. Otherwise each task's y is a float target (one output unit).
    regression: RegressionTarget | None = None
    # None: tasks one after another, each boundary told to the method; else one task-free
    # stream (see birram.data.stream).
    stream: StreamSpec | None = None

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def train_mask(self, task_index: int) -> torch.Tensor:
        """Outputs active while training on task ``task_index`` (bool ``[n_outputs]``)."""
        mask = torch.zeros(self.n_outputs, dtype=torch.bool)
        if self.scenario == "domain":
            mask[:] = True
        elif self.scenario == "task":
            mask[list(self.tasks[task_index].outputs)] = True
        else:  # class-incremental: every class seen so far
            for task in self.tasks[: task_index + 1]:
                mask[list(task.outputs)] = True
        return mask

    def eval_mask(self, trained_up_to: int, test_task: int) -> torch.Tensor:
        """Outputs allowed when testing task ``test_task`` after training ``trained_up_to``."""
        if self.scenario == "task":
            return self.train_mask(test_task)
        return self.train_mask(trained_up_to)

    def task_masks(self) -> torch.Tensor:
        """``[n_tasks, n_outputs]`` training masks, indexed by per-sample task ids."""
        return torch.stack([self.train_mask(t) for t in range(self.n_tasks)])

    def to(self, device: torch.device | str) -> Protocol:
        tasks = tuple(
            Task(t.index, t.x_train.to(device), t.y_train.to(device), t.x_test.to(device),
                 t.y_test.to(device), t.outputs, t.class_names)
            for t in self.tasks
        )
        return Protocol(self.name, self.scenario, tasks, self.n_outputs, self.input_shape,
                        self.output_names, self.regression, self.stream)


def check_scenario(scenario: str) -> Scenario:
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; allowed: {', '.join(SCENARIOS)}")
    return scenario  # type: ignore[return-value]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images scale to [0, 1]; tabular float data passes through unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def split_protocol(
    data: ArrayDataset,
    scenario: str,
    n_tasks: int,
    class_order: list[int] | None = None,
    name: str | None = None,
) -> Protocol:
    """Partition the classes into ``n_tasks`` equal groups, in ``class_order`` (default 0..C-1)."""
    scenario = check_scenario(scenario)
    n_classes = data.n_classes
    order = list(range(n_classes)) if class_order is None else list(class_order)
    if sorted(order) != list(range(n_classes)):
        raise ConfigError(f"class order {order} must be a permutation of 0..{n_classes - 1}")
    if n_tasks < 1 or n_classes % n_tasks != 0:
        raise ConfigError(f"n_tasks={n_tasks} must divide the {n_classes} classes of {data.name}")
    per_task = n_classes // n_tasks
    # new_label[original class] = its position in the order
    new_label = torch.empty(n_classes, dtype=torch.long)
    new_label[torch.tensor(order)] = torch.arange(n_classes)
    y_train, y_test = new_label[data.y_train], new_label[data.y_test]
    x_train, x_test = to_float(data.x_train), to_float(data.x_test)
    tasks = []
    for t in range(n_tasks):
        lo, hi = t * per_task, (t + 1) * per_task
        tr = (y_train >= lo) & (y_train < hi)
        te = (y_test >= lo) & (y_test < hi)
        shift = lo if scenario == "domain" else 0
        outputs = tuple(range(lo - shift, hi - shift))
        names = tuple(data.class_names[c] for c in order[lo:hi])
        tasks.append(Task(t, x_train[tr], y_train[tr] - shift, x_test[te], y_test[te] - shift,
                          outputs, names))
    n_outputs = per_task if scenario == "domain" else n_classes
    if scenario == "domain":
        output_names = tuple(f"class {i} of each task" for i in range(per_task))
    else:
        output_names = tuple(data.class_names[c] for c in order)
    return Protocol(name or f"split-{data.name}", scenario, tuple(tasks), n_outputs,
                    data.input_shape, output_names)


def permutations(n_tasks: int, n_features: int, seed: int) -> list[torch.Tensor]:
    """Task 0 keeps the original order; later tasks get a fixed random permutation."""
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.arange(n_features)]
    perms += [torch.randperm(n_features, generator=gen) for _ in range(n_tasks - 1)]
    return perms


def permuted_protocol(
    data: ArrayDataset, scenario: str, n_tasks: int, seed: int = 0, name: str | None = None
) -> Protocol:
    """Each task shows every class with the input features in a fixed random order."""
    scenario = check_scenario(scenario)
    if n_tasks < 1:
        raise ConfigError(f"n_tasks={n_tasks} must be at least 1")
    n_classes = data.n_classes
    x_train = to_float(data.x_train).flatten(1)
    x_test = to_float(data.x_test).flatten(1)
    tasks = []
    for t, perm in enumerate(permutations(n_tasks, x_train.shape[1], seed)):
        shift = 0 if scenario == "domain" else t * n_classes
        outputs = tuple(range(shift, shift + n_classes))
        tasks.append(Task(t, x_train[:, perm], data.y_train + shift, x_test[:, perm],
                          data.y_test + shift, outputs, data.class_names))
    n_outputs = n_classes if scenario == "domain" else n_classes * n_tasks
    if scenario == "domain":
        output_names = data.class_names
    else:
        output_names = tuple(f"{c} (task {t + 1})" for t in range(n_tasks)
                             for c in data.class_names)
    return Protocol(name or f"permuted-{data.name}", scenario, tuple(tasks), n_outputs,
                    (x_train.shape[1],), output_names)


REGRESSION_SCENARIOS = ("class", "domain")


def regression_protocol(
    data: ArrayDataset,
    scenario: str,
    n_tasks: int,
    class_order: list[int] | None = None,
    name: str | None = None,
) -> Protocol:
    """The split protocol's tasks (the same groups of levels, in the same order) with each
    sample's target log10 of its class value instead of its class, on one output unit.

    The single output is shared by every task, so the class- and domain-incremental scenarios
    coincide; the task-incremental one (a head per task) does not apply.
    """
    if data.class_values is None:
        raise ConfigError(f"{data.name} has classes without values; a regression target needs "
                          "a dataset of levels (the RRAM compliance datasets)")
    if scenario not in REGRESSION_SCENARIOS:
        raise ConfigError(f"a regression target is one output shared by every task; use "
                          f"scenario class or domain (they coincide here), not {scenario!r}")
    split = split_protocol(data, "class", n_tasks, class_order, name)
    order = list(range(data.n_classes)) if class_order is None else list(class_order)
    log_levels = np.log10(np.asarray(data.class_values, dtype=np.float64))
    low, high = float(log_levels.min()), float(log_levels.max())
    centre, scale = (high + low) / 2, max((high - low) / 2, 1e-12)
    # split labels are positions in ``order``; the target is that class's value in model units
    target_of_label = torch.tensor((log_levels[order] - centre) / scale, dtype=torch.float32)
    tasks = tuple(Task(t.index, t.x_train, target_of_label[t.y_train], t.x_test,
                       target_of_label[t.y_test], (0,), t.class_names) for t in split.tasks)
    target = RegressionTarget("log10-icc", centre, scale, tuple(log_levels.tolist()),
                              data.class_names)
    return Protocol(split.name, scenario, tasks, 1, split.input_shape,  # type: ignore[arg-type]
                    ("log10 I_CC (A)",), target)
