"""``CrossbarLinear``: one ``nn.Linear`` computed on a persistent, tiled RRAM crossbar.

Digital shadow weights stay the layer's ``weight`` and ``bias`` Parameters (the very objects of
the replaced ``nn.Linear``), so optimisers, regularisers and state dicts keep working. The chip
state lives in buffers of shape ``[2, out, in]`` (index 0: the G+ device of each weight's
differential pair, 1: the G- device): the cell-model level each device holds, its target and
programmed conductance, its write count, whether it is stuck, and the chip time it was last
programmed at. Unlike aihwkit, which redraws programming noise on every inference, the state is
persistent: a device keeps its programmed conductance, drift clock and write count until it is
written again.

Mapping (aihwkit's conductance converter idea, Rasch et al., AICAS 2021): a weight ``w`` maps
to the level ``k`` whose conductance above the lowest level, ``g[k] - g[0]``, is nearest to
``|w| / w_max * (g[top] - g[0])``; the sign picks which device of the pair is SET to ``k``, the
other stays at level 0, so ``W ~ (G+ - G-) / scale`` with ``scale = (g[top] - g[0]) / w_max``.
``w_max`` is ``ChipConfig.weight_range`` if set; otherwise it is set per layer to max|W| at the
first programming and raised (re-targeting every device) only when a weight later exceeds it,
so ordinary training steps do not rewrite the whole array.

Layout (CrossSim's tiling, Sandia): the ``[in, out]`` conductance matrix is cut into tiles of
``tile_rows x tile_cols`` weights (each a differential pair); each tile computes its partial sum
for its rows, the partial sums pass the ADC per tile and are added digitally. The bias stays
digital (added after the ADC).

Read noise: each read multiplies every device's current by a fresh log-normal factor of mean 1,
``exp(s N - s^2 / 2)``. A tile column's current is a sum of many such independent terms; it is
drawn from the Gaussian with that sum's exact mean and variance (two matmuls per tile instead of
a draw per device per input vector), which is accurate whenever a column sums more than a few
active devices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birram.errors import ConfigError
from birram.hardware.cells import CellModel
from birram.hardware.chip import ChipConfig
from birram.hardware.converters import choose_range, quantise
from birram.hardware.energy import Ledger, adc_energy_j, dac_energy_j

MODES = ("digital", "analog")
POS, NEG = 0, 1  # index of the G+ and G- device of a differential pair


class Chip:
    """The parts of a chip every layer shares: its configuration, cell model and ledger.

    Deep copies of a deployed model share it too (a frozen copy runs on the same chip).
    """

    def __init__(self, config: ChipConfig, cells: CellModel, ledger: Ledger | None = None
                 ) -> None:
        self.config, self.cells = config, cells
        self.ledger = ledger if ledger is not None else Ledger()

    def __deepcopy__(self, memo: dict[int, Any]) -> Chip:
        return self


def stream_seed(seed: int, layer_index: int, stream: int) -> int:
    """An independent seed for one random stream of one layer (faults, programming, reads)."""
    return int(np.random.SeedSequence([seed, layer_index, stream]).generate_state(1, np.uint64)[0])


def chip_levels(cells: CellModel, n_levels: int | None) -> tuple[Tensor, Tensor, bool]:
    """``(cell level of each chip level, mean conductance of each, continuous)``.

    A chip using fewer levels than the cell model offers takes evenly spaced level indices,
    always including the lowest (RESET) and the highest level.
    """
    table = cells.levels
    g_mean = torch.as_tensor(np.asarray(table.g_mean_s), dtype=torch.float64)
    continuous = bool(getattr(cells, "continuous", False))
    available = table.n_levels
    if continuous or n_levels is None:
        index = torch.arange(available)
    else:
        if n_levels > available:
            raise ConfigError(f"chip.n_levels={n_levels}; allowed: at most the {available} "
                              "levels of the cell model, or None")
        index = torch.as_tensor(np.round(np.linspace(0, available - 1, n_levels)).astype(np.int64))
    if continuous:
        index = index[[0, -1]]
    g = g_mean[index]
    if not bool((g[1:] > g[:-1]).all()):
        raise ConfigError("the cell model's level conductances must rise with the level")
    return index, g, continuous


class CrossbarLinear(nn.Linear):
    """A drop-in ``nn.Linear`` whose ``analog`` mode computes on the programmed crossbar.

    It stays an ``nn.Linear`` subclass so code that finds linear layers by type (the Fisher
    computation of EWC, ``deploy`` itself) sees it; its forward pass is its own.

    - ``mode = "digital"``: ``F.linear`` with the shadow weights (training as usual).
    - ``mode = "analog"``: DAC -> tiled conductance MVM with read noise -> ADC per tile ->
      digital sum + bias. With gradients on, the backward pass is straight-through to the
      shadow weights: ``out = digital + (analog - digital).detach()``.
    """

    def __init__(self, linear: nn.Linear, chip: Chip, name: str = "", layer_index: int = 0
                 ) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # the same Parameter objects: optimisers keep them
        self.register_parameter("bias", linear.bias)
        self.chip, self.name, self.layer_index = chip, name, layer_index
        self.mode = "digital"
        cfg = chip.config
        self.n_row_tiles = math.ceil(self.in_features / cfg.tile_rows)
        self.n_col_tiles = math.ceil(self.out_features / cfg.tile_cols)
        index, g_levels, self.continuous = chip_levels(chip.cells, cfg.n_levels)
        device = linear.weight.device
        self.register_buffer("level_map", index.to(device))  # chip level -> cell-model level
        self.register_buffer("level_g", g_levels.to(device))  # mean conductance per chip level
        shape = (2, self.out_features, self.in_features)
        self.register_buffer("w_max", torch.zeros((), dtype=torch.float64, device=device))
        self.register_buffer("clock_s", torch.zeros((), dtype=torch.float64, device=device))
        self.register_buffer("age_temp_k", torch.tensor(cfg.temp_k, dtype=torch.float64,
                                                        device=device))
        self.register_buffer("drift_ref", torch.zeros((), dtype=torch.float64, device=device))
        self.register_buffer("dac_running", torch.zeros((), device=device))
        self.register_buffer("adc_running", torch.zeros(self.n_row_tiles, self.n_col_tiles,
                                                        device=device))
        self.program_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, layer_index, 1))
        self._read_gens: dict[torch.device, torch.Generator] = {}
        self._cache: dict[str, Tensor] = {}

        # Stuck-at faults, drawn once per chip; every device starts in its RESET (HRS) state,
        # reached at fabrication, so these draws count no writes.
        fault_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, layer_index, 0))
        u = torch.rand(shape, generator=fault_gen, dtype=torch.float64).to(device)
        stuck_hrs = u < cfg.stuck_hrs_fraction
        stuck_lrs = (u >= cfg.stuck_hrs_fraction) & (
            u < cfg.stuck_hrs_fraction + cfg.stuck_lrs_fraction)
        chip_level = torch.where(stuck_lrs, len(g_levels) - 1, 0)
        target = self.level_g[chip_level]
        cell_level = self.level_map[chip_level]
        self.register_buffer("cell_level", cell_level)
        self.register_buffer("target_g", target)
        self.register_buffer("g", self._draw(cell_level.flatten(), target.flatten()).view(shape))
        self.register_buffer("writes", torch.zeros(shape, dtype=torch.int64, device=device))
        self.register_buffer("stuck", stuck_hrs | stuck_lrs)
        self.register_buffer("programmed_at_s", torch.zeros(shape, dtype=torch.float64,
                                                            device=device))

    # -- properties -----------------------------------------------------------------------
    @property
    def config(self) -> ChipConfig:
        return self.chip.config

    @property
    def cells(self) -> CellModel:
        return self.chip.cells

    @property
    def ledger(self) -> Ledger:
        return self.chip.ledger

    @property
    def g_span(self) -> Tensor:
        """Conductance between the lowest and the highest chip level, S."""
        return self.level_g[-1] - self.level_g[0]

    @property
    def level_spacing_s(self) -> Tensor:
        """Mean conductance step between adjacent chip levels (the whole span if continuous)."""
        return self.g_span / max(self.level_g.numel() - 1, 1)

    @property
    def n_devices(self) -> int:
        return 2 * self.in_features * self.out_features

    @property
    def v_read_v(self) -> float:
        v = self.config.v_read_v
        return float(self.cells.levels.v_read_v) if v is None else v

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, mode={self.mode}, "
                f"tiles={self.n_row_tiles}x{self.n_col_tiles}")

    # -- programming ----------------------------------------------------------------------
    def _draw(self, cell_level: Tensor, target: Tensor) -> Tensor:
        """Programmed conductance of devices sent to ``cell_level`` (mean ``target``)."""
        if self.continuous:
            g = self.cells.program_conductance(target, self.program_gen)  # type: ignore[attr-defined]
        else:
            g = self.cells.program(cell_level, self.program_gen)
        g = g.to(torch.float64)
        scale = self.config.programming_noise_scale
        if scale != 1.0:
            g = (target + scale * (g - target)).clamp_min(0.0)
        return g

    def _targets(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``(target conductance, cell level)`` of every device, each ``[2, out, in]``."""
        span = self.g_span
        excess = (w.abs() / self.w_max).clamp(max=1.0) * span  # wanted G+ - G- above g[0]
        if self.continuous:
            on_g = self.level_g[0] + excess
            on_level = torch.where(excess > 0, self.level_map[-1], self.level_map[0])
            pos = torch.stack([torch.where(w > 0, on_g, self.level_g[0]),
                               torch.where(w < 0, on_g, self.level_g[0])])
            lev = torch.stack([torch.where(w > 0, on_level, self.level_map[0]),
                               torch.where(w < 0, on_level, self.level_map[0])])
            return pos, lev
        above = self.level_g - self.level_g[0]
        nearest = torch.bucketize(excess, (above[1:] + above[:-1]) / 2)
        chip_level = torch.stack([torch.where(w > 0, nearest, 0), torch.where(w < 0, nearest, 0)])
        if self.config.compensate_stuck:
            chip_level = self._around_stuck(w, chip_level)
        return self.level_g[chip_level], self.level_map[chip_level]

    def _around_stuck(self, w: Tensor, chip_level: Tensor) -> Tensor:
        """Fault-aware mapping: where one device of a pair is stuck (known from a test read),
        program its partner so that the pair's difference is still the nearest to the weight.

        A stuck-at-LRS device alone would turn its weight into +-w_max; its partner set to the
        level nearest ``g_stuck - G_wanted`` cancels it (Xia et al., "Stuck-at fault tolerance
        in RRAM computing systems", DAC 2017, use the same redundancy of differential pairs).
        """
        stuck = self.stuck
        # Only the few pairs with exactly one stuck device are remapped (0.5 % of pairs in
        # rram-4bit): work on their indices, not on the whole array, at every programming.
        pairs = (stuck[POS] ^ stuck[NEG]).flatten().nonzero().squeeze(1)
        if not pairs.numel():
            return chip_level
        wanted = (w.flatten()[pairs] / self.w_max).clamp(-1.0, 1.0) * self.g_span
        mids = (self.level_g[1:] + self.level_g[:-1]) / 2
        pos_stuck = stuck[POS].flatten()[pairs]
        g_pos, g_neg = self.g[POS].flatten()[pairs], self.g[NEG].flatten()[pairs]
        # G+ stuck at g: G- = g - wanted; G- stuck at g: G+ = g + wanted.
        partner = torch.bucketize(torch.where(pos_stuck, g_pos - wanted, g_neg + wanted), mids)
        fixed = chip_level.clone()
        neg, pos = fixed[NEG].view(-1), fixed[POS].view(-1)
        neg[pairs[pos_stuck]] = partner[pos_stuck]
        pos[pairs[~pos_stuck]] = partner[~pos_stuck]
        return fixed

    def _update_w_max(self, w: Tensor) -> None:
        fixed = self.config.weight_range
        if fixed is not None:
            self.w_max.fill_(fixed)
            return
        peak = w.abs().max() if w.numel() else torch.zeros((), dtype=w.dtype)
        if self.w_max <= 0 or peak > self.w_max:
            self.w_max.copy_(torch.where(peak > 0, peak, torch.ones_like(peak)))

    @torch.no_grad()
    def program(self, only_changed: bool = True) -> int:
        """Write the shadow weights onto the array; returns the number of write attempts.

        Only devices whose target level changed are written (all non-stuck devices with
        ``only_changed=False``); stuck devices are never written. With write-verify each device
        is re-programmed until a (noiseless) verify read lies within ``verify_tolerance`` level
        spacings of its level, or it runs out of attempts; every attempt counts as a
        write, costs write energy and restarts the device's drift clock. A device that reaches
        the endurance limit sticks in the state its last write left.
        """
        cfg = self.config
        w = self.weight.detach().to(torch.float64)
        self._update_w_max(w)
        target, cell_level = self._targets(w)
        want = ~self.stuck if not only_changed else (target != self.target_g) & ~self.stuck
        index = want.flatten().nonzero().squeeze(1)
        tally = self.ledger.tally(self.name)
        tally.programs += 1
        n_writes = 0
        if index.numel():
            lv, tg = cell_level.flatten()[index], target.flatten()[index]
            used = self.writes.flatten()[index]
            budget = (cfg.endurance_writes - used if cfg.endurance_writes is not None
                      else torch.full_like(used, cfg.verify_max_attempts))
            g_new, attempts = self._write_verify(lv, tg, budget)
            energy = (self.cells.write_energy(lv).to(torch.float64).cpu()
                      * attempts.cpu()).sum().item()
            n_writes = int(attempts.sum().item())
            for buf, values in ((self.g, g_new), (self.cell_level, lv), (self.target_g, tg)):
                buf.view(-1)[index] = values
            self.writes.view(-1)[index] += attempts
            self.programmed_at_s.view(-1)[index] = self.clock_s
            if cfg.endurance_writes is not None:
                worn = self.writes.view(-1)[index] >= cfg.endurance_writes
                self.stuck.view(-1)[index] |= worn
            tally.writes += n_writes
            tally.write_energy_j += energy
        self._cache.clear()
        if cfg.drift_compensation:
            self.drift_ref.copy_(self._reference_read(self.g))
        return n_writes

    def _write_verify(self, cell_level: Tensor, target: Tensor, budget: Tensor
                      ) -> tuple[Tensor, Tensor]:
        g = self._draw(cell_level, target)
        attempts = torch.ones_like(budget)
        tol = self.config.verify_tolerance
        if tol is None:
            return g, attempts
        limit = budget.clamp(max=self.config.verify_max_attempts)
        for _ in range(self.config.verify_max_attempts - 1):
            retry = ((g - target).abs() > tol * self.level_spacing_s) & (attempts < limit)
            if not bool(retry.any()):
                break
            again = retry.nonzero().squeeze(1)
            g[again] = self._draw(cell_level[again], target[again])
            attempts[again] += 1
        return g, attempts

    @torch.no_grad()
    def age(self, t_s: float, temp_k: float | None = None) -> None:
        """Let ``t_s`` seconds pass at ``temp_k`` (the chip's temperature if None).

        Drift is evaluated from each device's time since programming at the temperature of the
        latest ``age`` call (histories at several temperatures are not composed).
        """
        if not (math.isfinite(t_s) and t_s >= 0):
            raise ConfigError(f"age t_s={t_s!r}; allowed: a finite number >= 0")
        if temp_k is not None and not (math.isfinite(temp_k) and temp_k > 0):
            raise ConfigError(f"age temp_k={temp_k!r}; allowed: a finite number > 0")
        self.clock_s += t_s
        self.age_temp_k.fill_(self.config.temp_k if temp_k is None else temp_k)
        self._cache.clear()

    # -- reading --------------------------------------------------------------------------
    def conductance_now(self) -> Tensor:
        """``[2, out, in]`` conductance of every device at the current chip time, S."""
        if "g_now" not in self._cache:
            t_since = self.clock_s - self.programmed_at_s
            g = self.g
            if bool((t_since > 0).any()):
                g = g.clone()
                temp = float(self.age_temp_k)
                # Devices programmed at the same time share one drift call.
                for t in torch.unique(t_since[t_since > 0]).tolist():
                    at = t_since == t
                    g[at] = self.cells.drift(self.g[at], self.cell_level[at], t, temp).to(g.dtype)
            self._cache["g_now"] = g
        return self._cache["g_now"]

    def effective_weight(self) -> Tensor:
        """``(G+ - G-) / scale`` now, ``[out, in]``: the weights the array really holds."""
        g = self.conductance_now()
        return (g[POS] - g[NEG]) * (self.w_max / self.g_span)

    def _reference_read(self, g: Tensor | None = None) -> Tensor:
        """aihwkit-style global drift compensation: the noiseless output magnitude for an
        all-ones input, of the programmed conductances ``g`` (at programming) or of the
        drifted ones (at read time). The reference is taken from the conductances as written,
        not as read, so after a partial rewrite the drift of the devices left alone is still
        compensated."""
        g = self.conductance_now() if g is None else g
        return ((g[POS] - g[NEG]) * (self.w_max / self.g_span)).sum(1).abs().sum()

    def _tiled(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """Per-tile views of the array: effective weights and squared conductances as
        ``[row tiles, tile_rows, out]`` and each input row's total conductance (for energy)."""
        key = f"tiles_{dtype}"
        if key not in self._cache:
            g = self.conductance_now()
            per_weight = self.w_max / self.g_span
            rows = self.n_row_tiles * self.config.tile_rows
            pad = rows - self.in_features

            def tiles(m: Tensor) -> Tensor:  # [out, in] -> [Rt, tile_rows, out]
                return F.pad(m.T, (0, 0, 0, pad)).to(dtype).reshape(
                    self.n_row_tiles, self.config.tile_rows, self.out_features).contiguous()

            self._cache[key] = tiles((g[POS] - g[NEG]) * per_weight)
            self._cache[key + "_sq"] = tiles((g[POS].square() + g[NEG].square())
                                             * per_weight.square())
            self._cache["row_g"] = (g[POS] + g[NEG]).sum(0)  # [in], S
            factor = torch.ones((), dtype=torch.float64, device=g.device)
            if self.config.drift_compensation and self.drift_ref > 0:
                now = self._reference_read()
                factor = torch.where(now > 0, self.drift_ref / now, factor)
            self._cache["drift_factor"] = factor
        return {"w": self._cache[key], "sq": self._cache[key + "_sq"],
                "row_g": self._cache["row_g"], "drift_factor": self._cache["drift_factor"]}

    def _read_gen(self, device: torch.device) -> torch.Generator:
        if device not in self._read_gens:
            seed = stream_seed(self.config.seed, self.layer_index, 2)
            self._read_gens[device] = torch.Generator(device=device).manual_seed(seed)
        return self._read_gens[device]

    @torch.no_grad()
    def analog_forward(self, x: Tensor) -> Tensor:
        """The array's output for ``x`` (bias included), without gradients."""
        cfg = self.config
        lead, x2 = x.shape[:-1], x.detach().reshape(-1, self.in_features)
        dtype = x2.dtype if x2.dtype.is_floating_point else torch.float32
        x2 = x2.to(dtype)
        batch = x2.shape[0]
        arr = self._tiled(dtype)
        x_fs = choose_range(x2.abs().amax() if batch else torch.zeros((), dtype=dtype,
                                                                       device=x2.device),
                            self.dac_running, cfg.dac_range, update=self.training)
        xq = quantise(x2, x_fs, cfg.dac_bits)
        rows = self.n_row_tiles * cfg.tile_rows
        xt = F.pad(xq, (0, rows - self.in_features)).reshape(
            batch, self.n_row_tiles, cfg.tile_rows).transpose(0, 1)  # [Rt, B, tile_rows]
        partial = torch.bmm(xt, arr["w"])  # [Rt, B, out]
        sigma = self.cells.read_noise_sigma * cfg.read_noise_scale if cfg.read_noise else 0.0
        if sigma > 0:
            var = torch.bmm(xt.square(), arr["sq"]) * math.expm1(sigma**2)
            noise = torch.randn(partial.shape, generator=self._read_gen(partial.device),
                                device=partial.device, dtype=dtype)
            partial = partial + var.sqrt() * noise
        cols = self.n_col_tiles * cfg.tile_cols
        by_tile = F.pad(partial, (0, cols - self.out_features)).reshape(
            self.n_row_tiles, batch, self.n_col_tiles, cfg.tile_cols)
        if cfg.adc_bits is not None:
            observed = by_tile.abs().amax(dim=(1, 3)) if batch else torch.zeros_like(
                self.adc_running)
            fs = choose_range(observed, self.adc_running, cfg.adc_range, update=self.training)
            by_tile = quantise(by_tile, fs[:, None, :, None], cfg.adc_bits)
        y = by_tile.sum(0).reshape(batch, cols)[:, : self.out_features]
        if cfg.drift_compensation:
            y = y * arr["drift_factor"].to(dtype)
        self._account(xq, x_fs, arr["row_g"], batch)
        if self.bias is not None:
            y = y + self.bias.detach()
        return y.reshape(*lead, self.out_features)

    def _account(self, xq: Tensor, x_fs: Tensor, row_g: Tensor, batch: int) -> None:
        """Add this read to the ledger: V^2 G t per device, one DAC conversion per input per
        column tile, one ADC conversion per output per row tile."""
        cfg = self.config
        tally = self.ledger.tally(self.name)
        v = (xq.to(torch.float64) / torch.clamp(x_fs.to(torch.float64), min=1e-300)).clamp(-1, 1)
        v = v * self.v_read_v
        tally.read_energy_j += float((v.square().sum(0) @ row_g) * cfg.t_read_s)
        dac = batch * self.in_features * self.n_col_tiles
        adc = batch * self.out_features * self.n_row_tiles
        tally.vectors += batch
        tally.mvms += batch * self.n_row_tiles * self.n_col_tiles
        tally.macs += batch * self.in_features * self.out_features
        tally.dac_conversions += dac
        tally.adc_conversions += adc
        tally.dac_energy_j += dac * dac_energy_j(cfg.dac_bits)
        tally.adc_energy_j += adc * adc_energy_j(cfg.adc_bits)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "digital":
            return F.linear(x, self.weight, self.bias)
        analog = self.analog_forward(x)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if not needs_grad:
            return analog.to(x.dtype) if x.dtype.is_floating_point else analog
        digital = F.linear(x, self.weight, self.bias)
        # Straight-through: the forward value is the array's, the gradient the shadow weights'.
        return digital + (analog.to(digital.dtype) - digital).detach()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r}; allowed: {', '.join(MODES)}")
        self.mode = mode

    # -- housekeeping ---------------------------------------------------------------------
    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> CrossbarLinear:
        self._cache.clear()  # cached tiles live on the old device / dtype
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def summary(self) -> dict[str, Any]:
        writes = self.writes.to(torch.float64)
        return {"name": self.name, "in": self.in_features, "out": self.out_features,
                "devices": self.n_devices, "tiles": self.n_row_tiles * self.n_col_tiles,
                "levels": int(self.level_g.numel()), "continuous": self.continuous,
                "w_max": float(self.w_max), "stuck": int(self.stuck.sum()),
                "writes_total": int(self.writes.sum()), "writes_max": int(self.writes.max()),
                "writes_mean": float(writes.mean()), "clock_s": float(self.clock_s)}
