"""Pictures of what a generative-replay method (:class:`birram.methods.generative.BIR`) replays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from birram.methods.base import Context

if TYPE_CHECKING:
    from birram.methods.generative import BIR


MOSAIC_GAP = 2  # pixels of background between the tiles of a mosaic


def image_mosaic(rows: list[torch.Tensor], shape: tuple[int, ...],
                 per_class: int) -> np.ndarray:
    """Rows of flattened images (``shape`` = channels, height, width) tiled into one
    ``[H, W]`` (grey) or ``[H, W, 3]`` array in [0, 1], ``per_class`` tiles a row; missing
    tiles and the gaps between tiles are white."""
    channels, h, w = shape
    tile_h, tile_w = h + MOSAIC_GAP, w + MOSAIC_GAP
    out = np.ones((len(rows) * tile_h - MOSAIC_GAP, per_class * tile_w - MOSAIC_GAP, channels),
                  dtype=np.float32)
    for r, samples in enumerate(rows):
        images = samples[:per_class].reshape(-1, channels, h, w).clamp(0, 1)
        for k, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
            out[r * tile_h : r * tile_h + h, k * tile_w : k * tile_w + w] = img
    return out[..., 0] if channels == 1 else out


@torch.no_grad()
def sample_grid(method: BIR, ctx: Context, path: str | Path, per_class: int = 8,
                seed: int = 0) -> Path:
    """Write a PNG grid of generated samples, one row per class seen so far (atomic write).

    With a conditional prior or class gates, row c is generated *as* class c; otherwise the
    samples are unconditional and row c holds those the current model classifies as c. Image
    inputs replayed at the input level are shown as images; replayed features (internal
    replay) and tabular inputs are shown as heat-maps (one line per sample, one column per
    feature), since features have no pixel layout. Draws come from a private generator seeded
    with ``seed``, so a picture never changes the training run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from birram.io import write_with

    gen = torch.Generator().manual_seed(seed)
    source = method.current_generator(ctx)
    was_training = source.training
    source.eval()
    p = ctx.protocol
    seen = list(range(p.n_outputs)) if p.scenario == "domain" else sorted(
        {o for t in p.tasks[: ctx.task + 1] for o in t.outputs})
    classes = torch.tensor(seen).repeat_interleave(per_class).to(ctx.device)
    tasks = method._output_task.to(ctx.device)[classes]
    if p.scenario == "domain":
        tasks = torch.randint(ctx.task + 1, classes.shape, generator=gen).to(ctx.device)
    conditioned = method.conditional or (method.gating and method.gate_by == "class")
    if not conditioned:  # draw more, keep those the model labels as each class
        classes = classes.repeat(4)
        tasks = tasks.repeat(4)
    x = method.generate(ctx, source, classes, tasks, gen)
    labels = classes if conditioned else method.classify_replay_space(ctx.model, x).argmax(1)
    source.train(was_training)

    shape = p.input_shape
    as_image = not method.internal and len(shape) == 3 and shape[0] in (1, 3)
    rows = [x[labels == c][:per_class].cpu() for c in seen]
    if as_image:  # one mosaic in one axes: a subplot per sample costs seconds per picture
        fig, ax = plt.subplots(figsize=(per_class + 1.2, len(seen) + 0.8))
        mosaic = image_mosaic(rows, shape, per_class)
        ax.imshow(mosaic, cmap="gray" if shape[0] == 1 else None, vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        tile = shape[1] + MOSAIC_GAP
        ax.set_yticks([r * tile + shape[1] / 2 for r in range(len(seen))],
                      [p.output_names[c] for c in seen], fontsize=7)
        ax.set_xticks([])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        fig, axes = plt.subplots(len(seen), 1, squeeze=False,
                                 figsize=(8, 1.1 * len(seen) + 0.5))
        for r, (c, samples) in enumerate(zip(seen, rows)):
            ax = axes[r][0]
            if samples.shape[0] > 0:
                ax.imshow(samples.numpy(), aspect="auto", cmap="viridis")
            ax.set_yticks([])
            ax.set_ylabel(p.output_names[c], fontsize=7, rotation=0, ha="right")
    fig.suptitle(f"{method.name}: generated samples after task {ctx.task + 1}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    write_with(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path
