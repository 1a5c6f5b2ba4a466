"""An experiment's seeds of one method trained together (:mod:`birram.train_seeds`), each
written to its own directory exactly as a separate run writes it. The group checkpoints at
every task end, so an interrupted group resumes after its last finished task."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birram.errors import TrainingDiverged
from birram.methods.registry import build_method
from birram.models.stacked import NotStackable
from birram.results import SeedResult
from birram.run import (
    ProgressFactory,
    complete_seed,
    is_finished,
    resolve_device,
    run_method_seed,
    save_replay_samples,
    settings_from,
    write_seed_config,
)

if TYPE_CHECKING:
    from birram.config import RunConfig
    from birram.run import ExperimentInputs
    from birram.train_seeds import SeedRun


def _why_separate(cfg: RunConfig) -> str | None:
    if cfg.hardware is not None and cfg.hardware.mode != "program-after-task":
        return "hardware-aware training runs every step through each seed's own chip"
    if cfg.track is not None:
        return "tracking logs one run at a time"
    return None


def run_method_seeds(cfg: RunConfig, name: str, inputs: ExperimentInputs, out_dir: Path,
                     resume: bool = True, progress: ProgressFactory | None = None
                     ) -> tuple[list[SeedResult], str]:
    """Every seed of method ``name``: the unfinished ones trained together where the method
    and the configuration allow it, else one after another. Returns the results in the
    order of ``cfg.seeds`` and a line saying which way they were trained."""
    from birram.train_seeds import (
        keeps_eager_step,
        load_group_checkpoint,
        stack_group,
        train_stacked,
        why_not_stacked,
    )

    def seed_dir(seed: int) -> Path:
        return out_dir / name / f"seed-{seed}"

    pending = [s for s in cfg.seeds if not (resume and is_finished(cfg, seed_dir(s)))]

    def build():  # type: ignore[no-untyped-def]
        return build_method(name, cfg.method, inputs.extractor, target=cfg.target)

    reason = _why_separate(cfg)
    if reason is None and len(pending) >= 2:
        reason = why_not_stacked(build(), inputs.protocols[pending[0]], len(pending))
    group = None
    if reason is None and len(pending) >= 2:
        try:
            group = stack_group(build, {s: inputs.protocols[s] for s in pending},
                                settings_from(cfg), resolve_device(cfg.train.device))
        except NotStackable as err:
            reason = str(err)
    if group is None:
        results = []
        for seed in cfg.seeds:
            results += run_method_seed(cfg, name, seed, inputs.protocols[seed], seed_dir(seed),
                                       resume, progress, inputs.extractor)
        how = (f"one seed at a time: {reason}" if reason is not None
               else "one seed at a time: one seed left to train")
        return results, how

    done = {seed: run_method_seed(cfg, name, seed, inputs.protocols[seed], seed_dir(seed),
                                  resume, progress, inputs.extractor)
            for seed in cfg.seeds if seed not in pending}  # read back from sealed directories
    chips: dict[int, Any] = {}
    if cfg.hardware is not None:  # program-after-task: each seed's chips, at task ends
        from birram import onchip

        for run in group.runs:
            run.hooks = chips[run.seed] = onchip.hooks_for(cfg.hardware, 1)
            chips[run.seed].setup(run.method, run.ctx)
    for run in group.runs:
        write_seed_config(cfg, name, run.seed, seed_dir(run.seed))
    # A chip's state is not checkpointed (as for one seed): such a group restarts whole.
    checkpoint = None if chips else group_checkpoint(out_dir / name, pending)
    if checkpoint is not None and resume and checkpoint.exists():
        load_group_checkpoint(checkpoint, group)
    label = f"{name} seeds {','.join(map(str, pending))}"
    tick = (progress(label, cfg.train.iters * group.ctx.protocol.n_tasks)
            if progress else None)

    def on_task_end(run: SeedRun) -> None:
        save_replay_samples(run.method, run.ctx, seed_dir(run.seed))

    started = time.perf_counter()
    try:
        train_stacked(group, tick, on_task_end, checkpoint)
    except TrainingDiverged as err:
        raise TrainingDiverged(f"{name}, seeds {','.join(map(str, pending))} (trained "
                               f"together): {err}") from None
    wall = time.perf_counter() - started
    extra = {"trained_with_seeds": pending, "group_wall_seconds": wall}
    kept = None
    if chips:  # what each seed keeps between tasks: its share of the stacked state
        from birram.methods.joint import Joint
        from birram.onchip import bytes_kept

        if not isinstance(group.method, Joint):
            kept = bytes_kept(group.method, group.ctx) // len(group.runs)
    for run in group.runs:
        done[run.seed] = [complete_seed(cfg, name, run.seed, run.method, run.ctx, run.state,
                                        seed_dir(run.seed), wall / len(pending),
                                        chip_hooks=chips.get(run.seed), extra=extra,
                                        bytes_kept=kept)]
    if checkpoint is not None:  # every seed is sealed now
        checkpoint.unlink(missing_ok=True)
    results = [r for seed in cfg.seeds for r in done[seed]]
    how = f"trained together: seeds {', '.join(map(str, pending))}"
    if keeps_eager_step(group.ctx.settings, group.ctx.device):
        how += " (with the eager step: on a CPU a compiled step of stacked seeds is slower)"
    return results, how


def group_checkpoint(method_dir: Path, seeds: list[int]) -> Path:
    """Where the seeds ``seeds`` of one method, trained together, checkpoint at task ends
    (named by the seeds: a resume with other unfinished seeds trains a group of its own)."""
    return method_dir / f"checkpoint-seeds-{'-'.join(map(str, seeds))}.safetensors"
