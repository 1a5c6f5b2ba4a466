"""Parameter-set files: a device parameter set and its variability sigmas, on disk.

``birram fit`` writes one; ``birram simulate --params FILE``, ``birram dataset --params FILE``,
the dataset config (``data.rram.params_file``) and the hardware model
(``hardware.params_file``) read it back. The file is JSON (as written) or TOML (hand-written)::

    format = "birram-rram-params"
    version = 1
    name = "fitted"
    [params]            # every DeviceParams field not given keeps the value of `base`
    base = "filament"
    i0_a = 8.1e-05
    ...
    [variability]
    c2c_rho = 0.7
    read_noise_sigma = 0.02
    [variability.d2d]   # log-normal sigma per parameter, device to device
    i0_a = 0.15
    [variability.c2c]   # and cycle to cycle (AR(1) over cycles with c2c_rho)
    vel0_m_per_s = 0.1

Reading validates every value (unknown keys, non-numbers, bounds) and raises one
:class:`~birram.errors.ConfigError` line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from birram import io
from birram.errors import ConfigError
from birram.rram.params import DeviceParams, get_params, validate_params
from birram.rram.variability import Variability

FORMAT = "birram-rram-params"
VERSION = 1
PARAM_NAMES = tuple(f.name for f in fields(DeviceParams) if f.name != "name")
_TOP_KEYS = {"format", "version", "name", "params", "variability", "fit"}
_VARIABILITY_KEYS = {"d2d", "c2c", "c2c_rho", "read_noise_sigma"}


@dataclass(frozen=True)
class ParamSet:
    """A parameter set with its variability, and where it came from (``fit``: free-form)."""

    params: DeviceParams
    variability: Variability
    fit: dict[str, Any] = field(default_factory=dict)

    def scaled(self, scale: float) -> Variability:
        """The variability with every d2d and c2c sigma multiplied by ``scale``."""
        return Variability(self.variability.d2d, self.variability.c2c,
                           self.variability.c2c_rho, self.variability.read_noise_sigma, scale)

    def to_dict(self) -> dict[str, Any]:
        v = self.variability
        return {"format": FORMAT, "version": VERSION, "name": self.params.name,
                "params": {k: getattr(self.params, k) for k in PARAM_NAMES},
                "variability": {"d2d": dict(v.d2d), "c2c": dict(v.c2c), "c2c_rho": v.c2c_rho,
                                "read_noise_sigma": v.read_noise_sigma},
                "fit": self.fit}

    def digest(self) -> str:
        """A short hash of the physics (params and variability, not the provenance)."""
        d = self.to_dict()
        text = json.dumps({"params": d["params"], "variability": d["variability"]},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_param_set(path: Path | str, param_set: ParamSet) -> None:
    """Validate, then write ``path`` atomically as strict JSON."""
    validate_params(param_set.params)
    param_set.variability.validated(param_set.params)
    io.write_json(path, param_set.to_dict())


def looks_like_file(text: str) -> bool:
    """``--params`` takes a set name or a file: a path has a separator or a file suffix."""
    return "/" in text or "\\" in text or text.endswith((".json", ".toml"))


def resolve_param_set(name_or_path: str) -> ParamSet:
    """A named parameter set (with its default variability) or a parameter-set file."""
    if looks_like_file(name_or_path):
        return load_param_set(name_or_path)
    params = get_params(name_or_path)
    return ParamSet(params, Variability.for_params(params))


def load_param_set(path: Path | str) -> ParamSet:
    path = Path(path)
    where = f"parameter file {path}"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {where}: {err.strerror or err}; give "
                          f"the path of a file written by `birram fit`") from None
    data = _parse(raw, path)
    return from_dict(data, where)


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    where = f"parameter file {path}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{where}: invalid TOML ({err})") from None
    else:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: invalid JSON at line {err.lineno} "
                              f"({err.msg})") from None
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of settings at the top")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a parameter may take")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of name = value, got {value!r}")
    return value


def from_dict(data: dict[str, Any], where: str = "parameter file") -> ParamSet:
    """Validate a parsed parameter file; every problem is one line naming the key."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(_TOP_KEYS))}")
    if data.get("format", FORMAT) != FORMAT:
        raise ConfigError(f"{where}: format must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("version", VERSION) != VERSION:
        raise ConfigError(f"{where}: version {data.get('version')!r} is not supported "
                          f"(this birram reads version {VERSION})")
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
    params_in = dict(_table(data.get("params", {}), f"{where}: params"))
    base_name = params_in.pop("base", "filament")
    if not isinstance(base_name, str):
        raise ConfigError(f"{where}: params.base must be a parameter-set name, got {base_name!r}")
    base = get_params(base_name)
    bad = sorted(set(params_in) - set(PARAM_NAMES))
    if bad:
        raise ConfigError(f"{where}: unknown device parameter(s) {', '.join(bad)} in params")
    values = {k: _number(v, f"{where}: params.{k}") for k, v in params_in.items()}
    try:
        params = validate_params(base.with_(name=name, **values))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    var_in = _table(data.get("variability", {}), f"{where}: variability")
    bad = sorted(set(var_in) - _VARIABILITY_KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown variability key(s) {', '.join(bad)}; allowed: "
                          f"{', '.join(sorted(_VARIABILITY_KEYS))}")
    default = Variability.for_params(params)
    sigmas = {}
    for kind in ("d2d", "c2c"):
        table = (_table(var_in[kind], f"{where}: variability.{kind}") if kind in var_in
                 else dict(getattr(default, kind)))
        for key in table:
            if key not in PARAM_NAMES:
                raise ConfigError(f"{where}: variability.{kind}: unknown device parameter "
                                  f"{key!r}")
        sigmas[kind] = tuple(sorted((k, _number(v, f"{where}: variability.{kind}.{k}"))
                                    for k, v in table.items()))
    variability = Variability(
        d2d=sigmas["d2d"], c2c=sigmas["c2c"],
        c2c_rho=_number(var_in.get("c2c_rho", default.c2c_rho), f"{where}: variability.c2c_rho"),
        read_noise_sigma=_number(var_in.get("read_noise_sigma", default.read_noise_sigma),
                                 f"{where}: variability.read_noise_sigma"))
    try:
        variability.validated(params)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    fit = data.get("fit", {})
    return ParamSet(params, variability, fit if isinstance(fit, dict) else {})
