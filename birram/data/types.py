"""Plain typed containers that flow from data sources into protocols."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ArrayDataset:
    """A labelled train/test split held entirely as tensors.

    Images are ``uint8`` of shape ``[N, C, H, W]`` (scaled to [0, 1] by the protocol);
    tabular data is ``float32`` of shape ``[N, D]``. Labels are ``int64`` in ``[0, n_classes)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    # The physical quantity each class stands for where it has one (the compliance current in A
    # of each RRAM level): what a regression target is made of.
    class_values: tuple[float, ...] | None = None
    notes: tuple[str, ...] = ()  # what was read and what was left out, for the run's summary

    def with_notes(self, *notes: str) -> ArrayDataset:
        return dataclasses.replace(self, notes=(*self.notes, *notes))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __post_init__(self) -> None:
        if self.x_train.shape[0] != self.y_train.shape[0]:
            raise ValueError(f"{self.name}: {self.x_train.shape[0]} train inputs but "
                             f"{self.y_train.shape[0]} labels")
        if self.x_test.shape[0] != self.y_test.shape[0]:
            raise ValueError(f"{self.name}: {self.x_test.shape[0]} test inputs but "
                             f"{self.y_test.shape[0]} labels")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"{self.name}: train inputs {tuple(self.x_train.shape[1:])} and "
                             f"test inputs {tuple(self.x_test.shape[1:])} differ in shape")
        if self.class_values is not None and len(self.class_values) != len(self.class_names):
            raise ValueError(f"{self.name}: {len(self.class_values)} class values for "
                             f"{len(self.class_names)} classes")
