"""``birram simulate`` and ``birram dataset``: the RRAM simulator from the command line."""

from __future__ import annotations

import csv
import io as _io
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from birram import io
from birram.cli_support import friendly_errors
from birram.errors import ConfigError
from birram.rundir import check_writable


def parse_currents(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--icc expects comma-separated currents in A, got {text!r}") from None
    if not values:
        raise ConfigError("--icc needs at least one compliance current")
    if len(values) > 64:
        raise ConfigError(f"--icc takes at most 64 compliance currents, got {len(values)}")
    for v in values:
        if not (math.isfinite(v) and 0 < v <= 0.1):
            raise ConfigError(f"compliance current must lie in (0, 0.1] A, got {v}")
    return sorted(values)


def check_range(option: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{option} must lie in [{low:g}, {high:g}], got {value!r}")


def simulate_command(params: str, icc: str, devices: int, cycles: int, out: Path,
                     v_set_max: float | None, v_reset_max: float | None, rate: float,
                     step: float, compliance_mode: str, variability: float, seed: int,
                     keep_iv: int) -> dict[str, Any]:
    """Cycle ``devices`` devices at every compliance level; write features, traces, plots."""
    import numpy as np
    import torch

    from birram.rram import plots
    from birram.rram.cycling import SweepConfig, default_sweep, run_cycles
    from birram.rram.dataset import single_thread
    from birram.rram.features import FEATURE_NAMES
    from birram.rram.integrate import IntegratorOptions
    from birram.rram.param_file import resolve_param_set
    from birram.rram.params import validate_params

    param_set = resolve_param_set(params)
    base = validate_params(param_set.params)
    levels = np.array(parse_currents(icc))
    check_range("--devices", devices, 1, 1_000_000)
    check_range("--cycles", cycles, 1, 1000)
    check_range("--seed", seed, 0, 2**32 - 1)
    check_range("--keep-iv", keep_iv, 0, 1000)
    check_range("--step", step, 1e-4, 1.0)
    check_range("--rate", rate, 1e-2, 1e12)
    if v_set_max is not None:
        check_range("--v-set-max", v_set_max, 1e-3, 20.0)
    if v_reset_max is not None:
        check_range("--v-reset-max", v_reset_max, 1e-3, 20.0)
    if len(levels) * devices * cycles > 50_000_000:
        raise ConfigError("levels x devices x cycles exceeds 50 million device cycles; "
                          "simulate fewer devices or cycles per command")
    check_writable(out)
    if compliance_mode not in ("ideal", "1t1r", "none"):
        raise ConfigError(f"--compliance must be ideal, 1t1r or none, got {compliance_mode!r}")
    d = default_sweep(base)
    sweep = SweepConfig(v_set_max if v_set_max is not None else d.v_set_max,
                        v_reset_max if v_reset_max is not None else d.v_reset_max, rate, step)
    n_levels = len(levels)
    n = n_levels * devices
    level_of = torch.arange(n) // devices
    keep = max(1, min(keep_iv, devices))
    keep_index = (torch.arange(n_levels)[:, None] * devices + torch.arange(keep)).ravel()
    with single_thread() as threads:
        result = run_cycles(base, torch.as_tensor(levels)[level_of], n, cycles,
                            variability=param_set.scaled(variability), seed=seed,
                            sweep=sweep, compliance_mode=compliance_mode,  # type: ignore[arg-type]
                            trace_points=64, keep_iv=keep_index,
                            device_ids=torch.arange(n) % devices, n_devices=devices,
                            options=IntegratorOptions(threads=threads))
    feats = {k: v.numpy() for k, v in result.features.items()}  # [cycles, n]
    labels = np.broadcast_to(level_of.numpy(), (cycles, n))
    icc_of = levels[labels]
    assert result.iv_current is not None and result.traces is not None
    # raw I-V curves of the first `keep` devices at every level: [cycles, steps, levels, keep]
    iv = result.iv_current.numpy().reshape(cycles, -1, n_levels, keep)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {**{k: v for k, v in feats.items()}, "level": labels, "icc_a": icc_of,
              "device": np.broadcast_to(np.arange(n) % devices, (cycles, n)),
              "cycle": np.broadcast_to(np.arange(cycles)[:, None], (cycles, n)),
              "levels_a": levels, "trace": result.traces.numpy(),
              "iv_volts": result.iv_volts.numpy(), "iv_current": iv}
    io.write_with(out / "rram_simulation.npz", lambda f: np.savez_compressed(f, **arrays))
    _write_csv(out / "features.csv", arrays, (*FEATURE_NAMES, "i_set_max_a"))
    r_lrs = feats["r_lrs_ohm"].ravel()
    slope = plots.power_law_exponent(icc_of.ravel(), r_lrs) if n_levels > 1 else float("nan")
    medians = [float(np.median(feats["r_lrs_ohm"][labels == k])) for k in range(n_levels)]
    saturated = [k for k in range(1, n_levels) if medians[k] > 0.9 * medians[k - 1]]
    if saturated:
        warnings.warn(f"R_LRS stops following the compliance above "
                      f"{levels[saturated[0] - 1]:.3g} A with {base.name}: the device cannot "
                      f"carry more current at its smallest gap (try --params filament)",
                      stacklevel=2)
    one_cycle = iv[-1]  # [steps, levels, keep]
    plots.iv_curves(arrays["iv_volts"], np.transpose(one_cycle, (1, 2, 0)), levels,
                    out / "iv_curves.png", f"{base.name}: last cycle, {keep} device(s) per level")
    plots.r_lrs_vs_icc(icc_of.ravel(), r_lrs, out / "r_lrs_vs_icc.png",
                       slope if n_levels > 1 else None)
    plots.feature_distributions({k: feats[k].ravel() for k in FEATURE_NAMES}, labels.ravel(),
                                levels, out / "feature_distributions.png")
    summary = {"params": base.name, "levels_a": levels.tolist(), "devices": devices,
               "cycles": cycles, "sweep": vars(sweep) if hasattr(sweep, "__dict__") else None,
               "r_lrs_median_ohm": medians,
               # one level has no scaling to fit: null rather than NaN (not valid JSON)
               "r_lrs_exponent": slope if n_levels > 1 and math.isfinite(slope) else None,
               "reached_compliance": float(np.mean(feats["i_set_max_a"] >= 0.98 * icc_of)),
               "seconds": result.seconds, "device_steps": result.device_steps}
    io.write_json(out / "summary.json", summary)
    return summary


def _write_csv(path: Path, arrays: dict[str, Any], names: tuple[str, ...]) -> None:
    import numpy as np

    text = _io.StringIO()
    writer = csv.writer(text)
    columns = ("device", "level", "icc_a", "cycle", *names)
    writer.writerow(columns)
    flat = [np.asarray(arrays[c]).ravel() for c in columns]
    for row in zip(*flat):
        writer.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else int(v)
                         for v in row])
    io.write_text(path, text.getvalue())


def register(app: typer.Typer) -> None:
    """Add the RRAM commands to the main ``birram`` app."""

    @app.command("simulate")
    @friendly_errors
    def simulate(
        params: str = typer.Option("filament", help="Parameter set: stanford-v1, stanford-asu, "
                                   "alox, hfo2, filament, or a parameter file (.json/.toml, "
                                   "e.g. from birram fit)."),
        icc: str = typer.Option("10e-6,100e-6,1e-3", help="Compliance currents in A, "
                                "comma-separated."),
        devices: int = typer.Option(100, help="Devices per compliance level."),
        cycles: int = typer.Option(10, help="Recorded SET/RESET cycles per device."),
        out: Path = typer.Option(Path("rram-sim"), help="Output directory."),
        v_set_max: float = typer.Option(None, help="SET sweep amplitude (V)."),
        v_reset_max: float = typer.Option(None, help="RESET sweep amplitude (V)."),
        rate: float = typer.Option(1e4, help="Sweep rate (V/s)."),
        step: float = typer.Option(5e-3, help="Sweep voltage step (V)."),
        compliance: str = typer.Option("ideal", help="ideal, 1t1r or none."),
        variability: float = typer.Option(1.0, help="Scale of the variability sigmas."),
        seed: int = typer.Option(0, help="Random seed."),
        keep_iv: int = typer.Option(5, help="Raw I-V curves kept per level."),
    ) -> None:
        """Simulate DC cycles of a device population at several compliance currents."""
        summary = simulate_command(params, icc, devices, cycles, out, v_set_max, v_reset_max,
                                   rate, step, compliance, variability, seed, keep_iv)
        exponent = summary["r_lrs_exponent"]
        scaling = "" if exponent is None else f"R_LRS ~ I_CC^{exponent:.2f}; "
        typer.echo(f"{summary['params']}: {len(summary['levels_a'])} level(s) x {devices} "
                   f"device(s) x {cycles} cycle(s) in {summary['seconds']:.1f} s; "
                   f"{scaling}wrote {out}")

    @app.command("dataset")
    @friendly_errors
    def dataset(
        view: str = typer.Option("features", help="features or trace."),
        small: bool = typer.Option(False, help="The small test-sized configuration."),
        cache_dir: Path = typer.Option(None, help="Cache directory (default ~/.cache/birram "
                                       "or $BIRRAM_CACHE)."),
        seed: int = typer.Option(0, help="Random seed."),
        params: str = typer.Option(None, help="Parameter set name, or a parameter file "
                                   "(.json/.toml, e.g. from birram fit)."),
    ) -> None:
        """Generate (or load from the cache) the RRAM compliance-level dataset and describe it."""
        from birram.rram.dataset import RRAMDatasetConfig, load_rram_dataset
        from birram.rram.param_file import looks_like_file

        if cache_dir is not None:
            check_writable(cache_dir, "--cache-dir")
        chosen: dict[str, Any] = {"seed": seed}
        if params is not None:
            chosen["params_file" if looks_like_file(params) else "params"] = params
        cfg = RRAMDatasetConfig.small(**chosen) if small else RRAMDatasetConfig(**chosen)
        if view not in ("features", "trace"):
            raise ConfigError(f"--view must be features or trace, got {view!r}")
        data = load_rram_dataset(cfg, view, cache_dir)  # type: ignore[arg-type]
        typer.echo(f"{data.name}: {len(data.y_train)} train / {len(data.y_test)} test samples, "
                   f"input {list(data.input_shape)}, classes {', '.join(data.class_names)}")


if __name__ == "__main__":  # pragma: no cover
    app = typer.Typer()
    register(app)
    sys.exit(app())
