"""``birram pretrain``: train a conv feature extractor and save it for internal replay."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from birram.cli import console, friendly_errors
    from birram.cli_options import DataDirOpt

    @app.command()
    @friendly_errors
    def pretrain(
        dataset: str = typer.Option("cifar10", help="Source to pre-train on (e.g. cifar10)."),
        out: Path = typer.Option(..., "--out", "-o", help="File to write the extractor to."),
        layers: int = typer.Option(5, min=1, help="Number of conv layers."),
        channels: int = typer.Option(16, min=1, help="Channels of the first conv layer."),
        iters: int = typer.Option(5000, min=1, help="Training iterations."),
        batch_size: int = typer.Option(256, "--batch-size", min=1),
        lr: float = typer.Option(1e-4, min=0.0),
        seed: int = typer.Option(0),
        device: str = typer.Option("cpu"),
        data_dir: Path = DataDirOpt,
        last_block: str = typer.Option(
            "bn-relu", "--last-block",
            help="bn-relu, or linear: end in a plain conv, as the BI-R paper's extractor."),
    ) -> None:
        """Pre-train a conv feature extractor (with batch norm) on a dataset and save it."""
        from birram.errors import ConfigError
        from birram.rram.cli import check_range
        from birram.rundir import check_writable

        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; give a file name, e.g. {out}/x.pt")
        check_writable(out.parent, "--out")
        if last_block not in ("bn-relu", "linear"):
            raise ConfigError(f"--last-block {last_block!r}; allowed: bn-relu, linear")
        for option, value, low, high in (("--layers", layers, 1, 12),
                                         ("--channels", channels, 1, 1024),
                                         ("--iters", iters, 1, 1_000_000),
                                         ("--batch-size", batch_size, 1, 100_000),
                                         ("--lr", lr, 1e-12, 10.0), ("--seed", seed, 0, 2**32 - 1)):
            check_range(option, value, low, high)
        from birram.data.sources import load_source
        from birram.pretrain import pretrain_extractor, save_extractor
        from birram.run import resolve_device

        data = load_source(dataset, data_dir=data_dir, seed=seed)
        module, test_accuracy = pretrain_extractor(
            data, layers=layers, channels=channels, iters=iters, batch_size=batch_size, lr=lr,
            seed=seed, device=resolve_device(device), last_block=last_block)  # type: ignore[arg-type]
        save_extractor(module, out, {"dataset": dataset, "layers": layers, "channels": channels,
                                     "last_block": last_block, "iters": iters,
                                     "test_accuracy": test_accuracy})
        console.print(f"Extractor written to [bold]{out}[/] (test accuracy of the pre-training "
                      f"classifier: {100 * test_accuracy:.1f} %).")
