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
    # allow_inf_nan=False: a NaN or infinite setting (``--lr inf``) is refused where it enters.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


MAX_SEED = 2**32 - 1  # numpy's seed range; torch's is wider


class StreamConfig(Strict):
    """The protocol as one task-free stream (birram.data.stream): no boundary is told."""

    # Width of the window centred on each boundary over which the next context's probability
    # ramps from 0 to 1 (0: sharp, still untold); at most the iterations per context. The
    # reference's --fuzziness is half of it.
    transition_iters: int = Field(default=500, ge=0, le=1_000_000)
    # fuzzy: contexts in task order with gradual transitions; random: every sample from a
    # uniformly drawn context throughout. A random order of contexts: data.class_order="seeded".
    mode: Literal["fuzzy", "random"] = "fuzzy"


class DataConfig(Strict):
    protocol: str = "split-fashion"  # see birram.protocol_registry.PROTOCOLS
    # None: the protocol's standard number
    n_tasks: int | None = Field(default=None, ge=1, le=1000)
    # None: natural order; "seeded": a random order drawn from each run's seed, as the
    # reference BI-R code does (numpy's permutation for that seed), so seeds differ in tasks.
    class_order: list[int] | Literal["seeded"] | None = None
    data_dir: Path | None = None
    download: bool = False
    view: Literal["features", "trace"] = "features"  # RRAM protocols only
    rram: dict[str, Any] = Field(default_factory=dict)  # overrides of the RRAM dataset config
    # A directory of measured I-V sweeps in place of the simulated devices (RRAM protocols);
    # measured_options are birram.rram.measured_dataset.MeasuredDatasetConfig fields.
    measured: Path | None = None
    measured_options: dict[str, Any] = Field(default_factory=dict)
    extractor: Path | None = None  # frozen pre-trained feature extractor (internal replay)
    stream: StreamConfig | None = None  # None: tasks with boundaries told to the method


class TrainConfig(Strict):
    # Upper bounds catch typos (an extra zero or two) long before they become a week-long run.
    iters: int = Field(default=2000, ge=1, le=1_000_000)
    batch_size: int = Field(default=128, ge=1, le=1_000_000)
    lr: float = Field(default=1e-3, gt=0, le=10)
    hidden: list[int] = Field(default_factory=lambda: [400, 400], max_length=32)
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1, le=1024)  # None: torch's default
    # Train the seeds of a method together as one stacked model (birram.train_seeds) where
    # the method supports it; False trains them one after another.
    batch_seeds: bool = True
    # Methods trained at once, each in its own process (one thread each unless ``threads``).
    workers: int = Field(default=1, ge=1, le=256)
    # Compile each training step into one graph (torch.compile; generative replay only).
    # It pays where the step is many small operations (a GPU; on a CPU about 10 % a step,
    # after a compilation of tens of seconds that a warm cache mostly saves).
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = \
        "default"
    # The arithmetic of the training step's forward pass: "bfloat16" runs matrix products in
    # bfloat16 under torch.autocast (parameters, optimiser and evaluation stay float32). It
    # pays on processors with bfloat16 instructions (AVX512-BF16, AMX; GPUs since Ampere).
    precision: Literal["float32", "bfloat16"] = "float32"

    @field_validator("hidden")
    @classmethod
    def _positive_units(cls, v: list[int]) -> list[int]:
        if any(u < 1 or u > 100_000 for u in v):
            raise ValueError("every hidden layer needs between 1 and 100000 units")
        return v


class MethodConfig(Strict):
    """Hyperparameters of every method; each method reads only its own."""

    # Regularisation strengths: None takes the published split-MNIST value for the scenario
    # (birram.methods.strengths.SPLIT_MNIST_STRENGTH); presets name their own.
    ewc_lambda: float | None = Field(default=None, ge=0)
    # None: the whole task
    ewc_fisher_samples: int | None = Field(default=None, ge=1, le=10_000_000)
    online_ewc_lambda: float | None = Field(default=None, ge=0)
    online_ewc_gamma: float = Field(default=1.0, gt=0, le=1)
    si_c: float | None = Field(default=None, ge=0)
    si_epsilon: float = Field(default=0.1, gt=0)
    distill_temperature: float = Field(default=2.0, gt=0, le=1000)
    er_samples_per_class: int = Field(default=100, ge=1, le=1_000_000)
    icarl_samples_per_class: int = Field(default=100, ge=1, le=1_000_000)
    agem_samples_per_class: int = Field(default=100, ge=1, le=1_000_000)  # A-GEM's memory
    # FROMP: strength of the functional regulariser (None: the reference's split-MNIST value for
    # the scenario, birram.methods.fromp.SPLIT_MNIST_TAU) and memorable points per class.
    fromp_tau: float | None = Field(default=None, ge=0, le=1e12)
    fromp_samples_per_class: int = Field(default=100, ge=1, le=100_000)
    # XdG: share of each hidden layer's units switched off per task (the reference's split-MNIST
    # task-IL value; it uses 0.6 on permuted MNIST and CIFAR-10)
    xdg_prop: float = Field(default=0.9, ge=0, lt=1)
    z_dim: int = Field(default=100, ge=1, le=100_000)
    gate_prop: float = Field(default=0.8, ge=0, lt=1)
    gate_by: Literal["class", "task"] = "class"  # what chooses the decoder gate (and GMM mode)
    recon_loss: Literal["auto", "bce", "mse"] = "auto"
    kl_weight: float = Field(default=1.0, gt=0, le=1e6)  # VAE KL weight (1: the reference's ELBO)
    generator_hidden: list[int] | None = None  # separate generator's layers; None: as the model
    # Generative classifier: each class's VAE (the reference's split-MNIST architecture) and
    # the importance samples per likelihood estimate (its eval_s).
    gc_hidden: list[int] = Field(default_factory=lambda: [85, 85], min_length=1, max_length=32)
    gc_z_dim: int = Field(default=5, ge=1, le=100_000)
    gc_importance_samples: int = Field(default=50, ge=1, le=100_000)
    # Real-valued inputs: learn each class's per-feature output standard deviation ("learned",
    # a proper density for standardised features) or keep it at 1 (the reference's "MSE").
    gc_output_scale: Literal["learned", "unit"] = "learned"
    # Switches that reproduce the reference code where birram differs (docs/reference_parity.md);
    # the defaults are birram's choices.
    # Distillation multiplied by T^2 (the BI-R paper's code); false: unscaled, as the newer code.
    distill_t_squared: bool = True
    # Gates (BI-R's decoder, XdG): "exact" switches off round(p n) units per context;
    # "independent" each unit with probability p, as both reference codebases.
    gate_draw: Literal["exact", "independent"] = "exact"
    # BI-R + SI: SI on every VAE parameter ("all") or on the encoder and classifier only, as
    # the paper's code; its own strength and gate proportion (None: si_c and gate_prop; the
    # paper's CIFAR-100 values are 1e8 and 0.6).
    bir_si_params: Literal["all", "encoder-classifier"] = "all"
    bir_si_c: float | None = Field(default=None, ge=0)
    bir_si_gate_prop: float | None = Field(default=None, ge=0, lt=1)
    # Task-IL replay of RtF, DGR and LwF (unconditional): each sample scored by one previous head
    # ("one") or by every previous head, the losses averaged ("all", as both references).
    task_replay_heads: Literal["one", "all"] = "one"
    # On a stream: iterations between consolidations (SI's importance update, the snapshot of
    # the previous model and generator that replay and distillation use), the reference's
    # --update-every.
    consolidate_every: int = Field(default=100, ge=1, le=1_000_000)
    # On a stream: weight of the current batch against replay. None: the share of the classes
    # seen so far that the batch holds (class-IL; 1/t after t contexts of equal size, as with
    # boundaries), 0.5 in task- and domain-IL; 0.5 everywhere is the reference's task-free mode.
    stream_current_weight: float | None = Field(default=None, gt=0, le=1)

    @field_validator("gc_hidden")
    @classmethod
    def _gc_positive_units(cls, v: list[int]) -> list[int]:
        if any(u < 1 or u > 100_000 for u in v):
            raise ValueError("every hidden layer needs between 1 and 100000 units")
        return v


class HardwareConfig(Strict):
    """Where the learner's weights live: a simulated chip, and how training uses it."""

    chip: str = "rram-4bit"  # a preset of birram.hardware.chip.CHIP_PRESETS
    # program-after-task: train digitally, write the changed weights onto each chip after every
    # task and evaluate there. hardware-aware: every forward pass (training, replay generation,
    # evaluation) runs on the chip, gradients reach digital shadow weights, and the chip is
    # reprogrammed every reprogram_every iterations and at the end of each task.
    mode: Literal["program-after-task", "hardware-aware"] = "program-after-task"
    chips: int = Field(default=5, ge=1, le=100)  # chip instances: device-variability draws
    # Iterations between reprogramming in hardware-aware mode. 1 (every step, only changed
    # devices are written) keeps the forward pass on the weights being trained; with longer
    # periods the straight-through gradient trains weights the chip does not yet hold, and
    # they run away (measured: BI-R diverges at 100 on rram-demo-quick).
    reprogram_every: int = Field(default=1, ge=1, le=1_000_000)
    variability_scale: float = Field(default=1.0, ge=0, le=20)  # of the RRAM cells' spreads
    changes: dict[str, Any] = Field(default_factory=dict)  # chip fields over the preset
    # RRAM cells from a parameter-set file (birram fit writes one) instead of the filament set
    params_file: str | None = None

    @field_validator("params_file")
    @classmethod
    def _readable_param_set(cls, v: str | None) -> str | None:
        if v is not None:
            from birram.rram.param_file import load_param_set

            try:
                load_param_set(v)
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return v


class TrackConfig(Strict):
    """Also log each run to an experiment tracker; the run directory stays the record."""

    backend: Literal["tensorboard", "mlflow"] = "tensorboard"
    log_every: int = Field(default=50, ge=1, le=1_000_000)  # iterations between loss points
    # MLflow's tracking URI (None: MLflow's own default, or MLFLOW_TRACKING_URI); TensorBoard
    # always writes into each run directory's tensorboard/ folder.
    uri: str | None = None


class RunConfig(Strict):
    # The name becomes part of the default run directory: no path separators.
    name: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    scenario: Literal["task", "domain", "class"] = "class"
    # What is learnt: the class of each sample, or (RRAM compliance protocols) log10 of its
    # compliance current as a real number, scored by the MAE in decades and R^2.
    target: Literal["class", "log10-icc"] = "class"
    methods: list[str] = Field(default_factory=lambda: ["none"], min_length=1, max_length=100)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1, max_length=1000)
    # Write each trained model for edge runtimes (birram.export), in these formats: pt2
    # (model.pt2, torch.export) and onnx (model.onnx and model.int8.onnx; birram[export]).
    export: bool = False
    export_formats: list[Literal["pt2", "onnx"]] = Field(
        default_factory=lambda: ["pt2", "onnx"], min_length=1, max_length=2)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    hardware: HardwareConfig | None = None  # None: digital only
    track: TrackConfig | None = None  # None: the run directory only

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range_and_distinct(cls, v: list[int]) -> list[int]:
        if any(s < 0 or s > MAX_SEED for s in v):
            raise ValueError(f"seeds must lie in [0, {MAX_SEED}]")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct (a repeated seed repeats the same run)")
        return v

    @field_validator("methods")
    @classmethod
    def _methods_distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("methods must be distinct")
        return v

    def seed_record(self, method_name: str, seed: int) -> dict[str, Any]:
        """The configuration of one method's seed, as its ``config.json`` and trackers record
        it (and ``birram onchip`` and sweeps read it back)."""
        return {**self.model_dump(mode="json"), "method_name": method_name, "seed": seed}


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


def check_setting(path: str, option: str = "--set") -> None:
    """ConfigError unless ``path`` (``method.kl_weight``) names a setting of :class:`RunConfig`.

    A path may go on inside a free-form table (``data.rram.n_levels``); whether its value is
    allowed is checked when the whole configuration is built.
    """
    model: type[BaseModel] = RunConfig
    parts = path.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if part not in model.model_fields:
            import difflib

            close = difflib.get_close_matches(part, list(model.model_fields), n=1)
            hint = (f"did you mean {'.'.join([*parts[:depth], close[0]])!r}?" if close else
                    "known: " + ", ".join(sorted(model.model_fields)))
            raise ConfigError(f"{option}: unknown setting {path!r} (no {part!r} in "
                              f"{where or 'the configuration'}); {hint}")
        inner = _model_inside(model.model_fields[part].annotation)
        if inner is None:
            if depth + 1 < len(parts) and not _is_table(model.model_fields[part].annotation):
                raise ConfigError(f"{option}: {'.'.join(parts[:depth + 1])} is a single value, "
                                  f"so {path!r} names nothing")
            return
        model = inner
    raise ConfigError(f"{option}: {path!r} is a whole section; name one of its settings, e.g. "
                      f"{path}.{next(iter(model.model_fields))}")


def _model_inside(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (``HardwareConfig | None`` -> HardwareConfig)."""
    import typing

    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_table(annotation: Any) -> bool:
    import typing

    return annotation is dict or typing.get_origin(annotation) is dict


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def is_preset_file(preset: str) -> bool:
    """A preset given as a file path (it names a ``.toml`` file) rather than by name."""
    return preset.endswith(".toml")


def preset_path(preset: str) -> Path:
    """The file of a preset: a name from the presets folder, or an explicit ``.toml`` path."""
    if is_preset_file(preset):
        path = Path(preset)
        if not path.is_file():
            raise ConfigError(f"preset file {preset} does not exist")
        return path
    if preset not in available_presets():  # by name only: no paths out of the folder
        raise ConfigError(f"unknown preset {preset!r}; available: "
                          f"{', '.join(available_presets())} (or a path ending in .toml)")
    return PRESET_DIR / f"{preset}.toml"


def load_preset(preset: str) -> dict[str, Any]:
    path = preset_path(preset)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"preset {path} is not valid TOML ({err}); fix or replace the file")\
            from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read preset {path} ({err})") from None


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
