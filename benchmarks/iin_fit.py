"""IIN fit wall time at the paper's CIFAR-10 scale: re-keying means retraining the IIN, so it must be cheap.

Fits `IINModule` for 40 epochs (early stopping never fires) on 9,000 synthetic cached pairs, a
2,048-d embedding and a 1,000-d cloud probability vector over 10 classes, split 90/10 as in the
paper. The pairs are served by a real `OWSDDataModule` (its `CachedPairs` and loaders), on CPU with
no logger, checkpoints or progress bar. Target: `trainer.fit` ≤ 60 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Trainer

from owsd.__main__ import keep_freed_memory
from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import RANDOM, ModelSpec
from owsd.data.cache import CachedRows, RowTable
from owsd.data.sources import ImageSource
from owsd.datamodule import CachedPairs, OWSDDataModule
from owsd.iin_module import IINModule

TARGET_SECONDS = 60.0


def synthetic_rows(
    count: int, embedding_dim: int, cloud_dim: int, classes: int, separation: float, seed: int
) -> CachedRows:
    """Learnable but not trivially so: per-class embedding means about `separation` unit-noise
    deviations apart, and cloud vectors that lean weakly toward a per-class pattern."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(count) % classes)[torch.randperm(count, generator=generator)]
    means = separation / (2 * embedding_dim) ** 0.5 * torch.randn(classes, embedding_dim, generator=generator)
    embedding = means[labels] + torch.randn(count, embedding_dim, generator=generator)
    patterns = torch.randn(classes, cloud_dim, generator=generator)
    cloud = (patterns[labels] + 3 * torch.randn(count, cloud_dim, generator=generator)).softmax(1)
    table = RowTable([f"synthetic/{i}" for i in range(count)], labels, {"embedding": embedding, "cloud": cloud})
    return CachedRows(table.image_ids, torch.arange(count), table)


def rows_between(rows: CachedRows, start: int, stop: int) -> CachedRows:
    return CachedRows(rows.image_ids[start:stop], rows.rows[start:stop], rows.table)


class SyntheticLabels(ImageSource):
    """Ids and labels of the synthetic rows; their pairs come ready-made, so no image is ever loaded."""

    def __init__(self, rows: CachedRows, classes: int) -> None:
        self._classes = [str(label) for label in range(classes)]
        self._items = [(image_id, int(label)) for image_id, label in zip(rows.image_ids, rows.labels)]

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def items(self) -> list[tuple[str, int]]:
        return self._items

    def load(self, index: int, size: int) -> torch.Tensor:
        raise NotImplementedError("synthetic pairs have no images")


def synthetic_datamodule(
    rows: CachedRows, classes: int, val_fraction: float, batch_size: int, key_file: Path
) -> OWSDDataModule:
    """An `OWSDDataModule` whose `pairs` are filled here, so `setup` never reads a cache and no model is built:
    the encoder and cloud below are placeholders; a key is made at `key_file` (the IIN records its fingerprint)."""
    data = OWSDDataModule(
        source=SyntheticLabels(rows, classes),
        encoders=[ModelSpec("tf_efficientnet_lite0", RANDOM)],
        cloud=LocalCloud("tf_efficientnet_lite2", RANDOM),
        scrambler=ScramblerSettings(key_file, create_key=True),
        batch_size=batch_size,
    )
    train = len(rows.image_ids) - round(len(rows.image_ids) * val_fraction)
    classes_by_label = {label: label for label in range(classes)}
    data.pairs = {
        "train": CachedPairs(rows_between(rows, 0, train), classes_by_label),
        "val": CachedPairs(rows_between(rows, train, len(rows.image_ids)), classes_by_label),
    }
    return data


def main() -> None:
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=9000)
    parser.add_argument("--embedding-dim", type=int, default=2048)
    parser.add_argument("--cloud-dim", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--separation", type=float, default=3.0, help="class mean gap in noise deviations")
    parser.add_argument("--epochs", type=int, default=40, help="all run: patience is set to this")
    parser.add_argument("--batch-size", type=int, default=64, help="OWSDDataModule's default")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = synthetic_rows(args.pairs, args.embedding_dim, args.cloud_dim, args.classes, args.separation, args.seed)
    with tempfile.TemporaryDirectory(prefix="owsd-bench-") as scratch:
        data = synthetic_datamodule(rows, args.classes, args.val_fraction, args.batch_size, Path(scratch) / "k.key")
        torch.manual_seed(args.seed)
        model = IINModule(patience=args.epochs)
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=args.epochs,
            default_root_dir=scratch,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        started = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - started

    metrics = trainer.callback_metrics
    steps = trainer.global_step
    print(
        f"IIN fit: {len(data.pairs['train'])} train / {len(data.pairs['val'])} val synthetic pairs, "
        f"{args.embedding_dim}+{args.cloud_dim} → {args.classes} classes, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"epochs run            {trainer.current_epoch} (of {args.epochs}), {steps} steps")
    print(f"trainer.fit wall time {seconds:.1f} s ({1e3 * seconds / max(steps, 1):.1f} ms/step, validation included)")
    print(f"final val loss        {metrics[f'val/{model.name}/loss']:.3f}")
    print(f"final val top-1       {metrics[f'val/{model.name}/top1']:.3f}")
    print(f"target ≤ {TARGET_SECONDS:.0f} s: {'PASS' if seconds <= TARGET_SECONDS else 'FAIL'}")


if __name__ == "__main__":
    main()
