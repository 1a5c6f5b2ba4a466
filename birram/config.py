"""Validated run configuration and named presets.

A preset is a readable TOML file in ``birram/presets/`` naming every setting it uses; command
line options override single fields. The fully resolved config is saved with each run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from birram.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    protocol: str = "split-fashion"  # see birram.protocol_registry.PROTOCOLS
    n_tasks: int | None = Field(default=None, ge=1)  # None: the protocol's standard number
    # None: natural order; "seeded": a random order drawn from each run's seed, as the
    # reference BI-R code does (numpy's permutation for that seed), so seeds differ in tasks.
    class_order: list[int] | Literal["seeded"] | None = None
    data_dir: Path | None = None
    download: bool = False
    view: Literal["features", "trace"] = "features"  # RRAM protocols only
    rram: dict[str, Any] = Field(default_factory=dict)  # overrides of the RRAM dataset config
    extractor: Path | None = None  # frozen pre-trained feature extractor (internal replay)


class TrainConfig(Strict):
    iters: int = Field(default=2000, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    hidden: list[int] = Field(default_factory=lambda: [400, 400])
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1)  # CPU threads; None: torch's default

    @field_validator("hidden")
    @classmethod
    def _positive_units(cls, v: list[int]) -> list[int]:
        if any(u < 1 for u in v):
            raise ValueError("every hidden layer needs at least one unit")
        return v


class MethodConfig(Strict):
    """Hyperparameters of every method; each method reads only its own."""

    # Regularisation strengths: None takes the published split-MNIST value for the scenario
    # (birram.methods.regularisers.SPLIT_MNIST_STRENGTH); presets name their own.
    ewc_lambda: float | None = Field(default=None, ge=0)
    ewc_fisher_samples: int | None = Field(default=None, ge=1)  # None: the whole task
    online_ewc_lambda: float | None = Field(default=None, ge=0)
    online_ewc_gamma: float = Field(default=1.0, gt=0, le=1)
    si_c: float | None = Field(default=None, ge=0)
    si_epsilon: float = Field(default=0.1, gt=0)
    distill_temperature: float = Field(default=2.0, gt=0)
    er_samples_per_class: int = Field(default=100, ge=1)
    icarl_samples_per_class: int = Field(default=100, ge=1)
    z_dim: int = Field(default=100, ge=1)
    gate_prop: float = Field(default=0.8, ge=0, lt=1)
    gate_by: Literal["class", "task"] = "class"  # what chooses the decoder gate (and GMM mode)
    recon_loss: Literal["auto", "bce", "mse"] = "auto"
    kl_weight: float = Field(default=1.0, gt=0)  # VAE KL weight (1: the reference's ELBO)
    generator_hidden: list[int] | None = None  # separate generator's layers; None: as the model


class RunConfig(Strict):
    name: str = "run"
    scenario: Literal["task", "domain", "class"] = "class"
    methods: list[str] = Field(default_factory=lambda: ["none"])
    seeds: list[int] = Field(default_factory=lambda: [1])
    export: bool = False  # write model.pt2 (torch.export) of each trained model for edge runtimes
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)


def validation_message(err: ValidationError) -> str:
    """One line naming the first bad field and what was wrong with it."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    got = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"unknown setting {where!r}; check its spelling"
    return f"bad value for {where}: {first['msg']} (got {got!r})"


def build_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_message(err)) from None


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_preset(name: str) -> dict[str, Any]:
    path = PRESET_DIR / f"{name}.toml"
    if not path.exists():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    with path.open("rb") as f:
        return tomllib.load(f)


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def resolve(preset: str | None, overrides: dict[str, Any]) -> RunConfig:
    """The preset (if any), with ``overrides`` (nested dict of set options) on top."""
    base = load_preset(preset) if preset else {}
    return build_config(deep_update(base, overrides))
