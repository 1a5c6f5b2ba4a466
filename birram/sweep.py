"""Sweeps: a grid (or a list) of configurations on top of a preset, each an experiment.

A sweep is described by a preset, fixed overrides, methods and seeds, and either a grid of
settings (``method.kl_weight = [0.25, 0.5, 1]``: every combination) or an explicit list of
configurations. Each configuration ("point") becomes an ordinary experiment directory, and each
(point, method, seed) an ordinary run directory, so a sweep resumes cell by cell. Every setting
is checked against the configuration model (unknown fields are named), and every point's full
configuration is validated before anything runs. This module only parses and expands; running
is :mod:`birram.sweep_run`.

A sweep file (TOML)::

    preset = "rram-demo-quick"
    methods = ["none", "bir"]
    seeds = [1, 2]

    [set]                       # fixed settings of every point
    "train.iters" = 100

    [grid]                      # every combination of these values
    "method.kl_weight" = [0.25, 0.5, 1]

    # or, instead of [grid], a list of configurations:
    # [[configs]]
    # "method.kl_weight" = 0.5
    # "train.lr" = 0.002
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birram.config import RunConfig, build_config, check_setting, deep_update, load_preset
from birram.errors import ConfigError
from birram.rundir import flat

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Settings a sweep sets through its own options, never as a grid axis.
NOT_AXES = {"methods": "--methods", "seeds": "--seeds", "name": "--set name=..."}
FILE_KEYS = {"preset", "methods", "seeds", "set", "grid", "configs"}


@dataclass(frozen=True)
class Axis:
    setting: str  # e.g. "method.kl_weight"
    values: tuple[Any, ...]


@dataclass
class SweepSpec:
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # flat: "train.iters" -> 100
    methods: list[str] | None = None  # None: the preset's
    seeds: list[int] | None = None
    axes: list[Axis] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)  # flat settings per point


@dataclass(frozen=True)
class Point:
    label: str  # the point's directory name, e.g. "kl_weight=0.5"
    settings: dict[str, Any]  # what this point sets on top of the sweep's base
    config: RunConfig


def parse_value(text: str) -> Any:
    """A value as JSON where it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def check_axis_setting(setting: str, option: str) -> None:
    if setting in NOT_AXES:
        raise ConfigError(f"{option}: {setting!r} cannot be swept here; use "
                          f"{NOT_AXES[setting]}")
    check_setting(setting, option)


def parse_grid_option(text: str) -> Axis:
    """``--grid method.kl_weight=0.25,0.5,1`` -> an :class:`Axis` (values parsed as JSON)."""
    if "=" not in text:
        raise ConfigError(f"--grid expects SECTION.FIELD=V1,V2,..., got {text!r}")
    setting, raw = (part.strip() for part in text.split("=", 1))
    values = [parse_value(v) for v in raw.split(",") if v.strip()]
    return make_axis(setting, values, "--grid")


def make_axis(setting: str, values: list[Any], option: str) -> Axis:
    check_axis_setting(setting, option)
    if not values:
        raise ConfigError(f"{option} {setting}: give at least one value")
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise ConfigError(f"{option} {setting}: values repeat ({values}); give each once")
    return Axis(setting, tuple(values))


def load_sweep_file(path: Path) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML file, every key checked."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"sweep file {path} is not valid TOML ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read sweep file {path} ({err})") from None
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown key {unknown[0]!r}; allowed: "
                          f"{', '.join(sorted(FILE_KEYS))}")
    if "grid" in data and "configs" in data:
        raise ConfigError(f"sweep file {path}: give [grid] or [[configs]], not both")
    where = f"sweep file {path}"
    spec = SweepSpec(preset=_typed(data, "preset", str, where),
                     methods=_typed_list(data, "methods", str, where),
                     seeds=_typed_list(data, "seeds", int, where))
    spec.settings = _flat_table(data.get("set", {}), f"{where} [set]")
    for setting in spec.settings:
        check_setting(setting, f"{where} [set]")
    for setting, values in _flat_table(data.get("grid", {}), f"{where} [grid]").items():
        if not isinstance(values, list):
            raise ConfigError(f"{where} [grid]: {setting} needs a list of values, got "
                              f"{values!r}")
        spec.axes.append(make_axis(setting, values, f"{where} [grid]"))
    configs = data.get("configs", [])
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise ConfigError(f"{where}: configs must be an array of tables ([[configs]])")
    for i, point in enumerate(configs):
        settings = _flat_table(point, f"{where} configs[{i}]")
        for setting in settings:
            check_axis_setting(setting, f"{where} configs[{i}]")
        spec.configs.append(settings)
    return spec


def _typed(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _typed_list(data: dict[str, Any], key: str, kind: type, where: str) -> list[Any] | None:
    value = data.get(key)
    if value is not None and not (isinstance(value, list)
                                  and all(isinstance(v, kind) for v in value)):
        raise ConfigError(f"{where}: {key} must be a list of {kind.__name__}, got {value!r}")
    return value


def _flat_table(table: Any, where: str) -> dict[str, Any]:
    """Dotted keys from a TOML table, whether written ``"a.b" = 1`` or ``[a] b = 1``; values
    of free-form tables (``data.rram``) stay whole when written as inline values."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and "." not in key:
            out.update({f"{key}.{k}": v for k, v in _flat_table(value, where).items()})
        else:
            out[key] = value
    return out


def nested(settings: dict[str, Any]) -> dict[str, Any]:
    """``{"method.kl_weight": 0.5}`` -> ``{"method": {"kl_weight": 0.5}}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        node = out
        *sections, last = key.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def point_settings(spec: SweepSpec) -> list[dict[str, Any]]:
    """The settings of each point: the grid's combinations, the list, or one base point."""
    if spec.axes and spec.configs:
        raise ConfigError("give grid axes (--grid) or a list of configurations, not both")
    if spec.configs:
        return [dict(c) for c in spec.configs]
    if not spec.axes:
        return [{}]
    return [dict(zip([a.setting for a in spec.axes], combo))
            for combo in itertools.product(*(a.values for a in spec.axes))]


MAX_POINTS = 10_000


def expand(spec: SweepSpec) -> list[Point]:
    """Every point's validated configuration, with a distinct directory label each."""
    base = load_preset(spec.preset) if spec.preset else {}
    top: dict[str, Any] = nested(spec.settings)
    if spec.methods is not None:
        top["methods"] = spec.methods
    if spec.seeds is not None:
        top["seeds"] = spec.seeds
    base = deep_update(base, top)
    all_settings = point_settings(spec)
    if len(all_settings) > MAX_POINTS:
        raise ConfigError(f"the sweep has {len(all_settings)} points; at most {MAX_POINTS}")
    points: list[Point] = []
    labels: set[str] = set()
    for i, settings in enumerate(all_settings):
        label = point_label(settings) or "base"
        if label in labels:
            label = f"point-{i + 1}"
        labels.add(label)
        try:
            cfg = build_config(deep_update(base, nested(settings)))
        except ConfigError as err:
            raise ConfigError(f"sweep point {label}: {err}") from None
        points.append(Point(label, settings, cfg))
    return points


def point_label(settings: dict[str, Any]) -> str:
    """``kl_weight=0.5__lr=0.001``: each setting's last part (whole where ambiguous)."""
    last = [key.split(".")[-1] for key in settings]
    parts = []
    for key, short in zip(settings, last):
        name = short if last.count(short) == 1 else key
        parts.append(f"{name}={_value_text(settings[key])}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", "__".join(parts))[:200]


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "-".join(_value_text(v) for v in value)
    return json.dumps(value)


def sweep_record(points: list[Point]) -> dict[str, Any]:
    """What ``sweep.json`` holds: each point's label, settings and full configuration."""
    return {"points": [{"label": p.label, "settings": p.settings,
                        "config": p.config.model_dump(mode="json")} for p in points]}


def flat_config(cfg: RunConfig) -> dict[str, Any]:
    return flat(cfg.model_dump(mode="json"))
