"""Pictures of what a generative-replay method (:class:`birram.methods.generative.BIR`) replays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from birram.methods.base import Context

if TYPE_CHECKING:
    from birram.methods.generative import BIR


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
    fig, axes = plt.subplots(len(seen), 1 if not as_image else per_class, squeeze=False,
                             figsize=(per_class if as_image else 8, 1.1 * len(seen) + 0.5))
    for r, (c, samples) in enumerate(zip(seen, rows)):
        if as_image:
            for k in range(per_class):
                ax = axes[r][k]
                ax.axis("off")
                if k < samples.shape[0]:
                    img = samples[k].view(*shape).permute(1, 2, 0).squeeze(-1).clamp(0, 1)
                    ax.imshow(img.numpy(), cmap="gray" if shape[0] == 1 else None)
            axes[r][0].set_title(p.output_names[c], fontsize=7, loc="left")
        else:
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
