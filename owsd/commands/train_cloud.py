"""`owsd train-cloud --config FILE --out DIR`: train a cloud classifier on a source's `cloud_split`.

The paper trains its CIFAR clouds itself (VGG16 on the train split); this is that step. Writes `DIR/cloud.ckpt`
(what `HubCloud(checkpoint=DIR/cloud.ckpt)` loads: weights, architecture, input size, normalisation, classes and
the ids of every image the classifier saw), `DIR/cloud.json` (what it was trained on and its validation accuracy,
measured again through `HubCloud` from the written file), `DIR/config.yaml` and Lightning's logs and checkpoints
under `DIR/lightning/`. An interrupted run trains again from the start.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile
from lightning.pytorch import Trainer, seed_everything

from owsd.cloud_datamodule import CloudTrainingData
from owsd.cloud_module import CloudClassifierModule
from owsd.commands.output import OutputFolder
from owsd.commands.settings import OWSDArgumentParser, parse, quiet_trainer_defaults
from owsd.components.hub_cloud import HubCloud
from owsd.components.trained_cloud import save_cloud_checkpoint
from owsd.threads import torch_threads

log = logging.getLogger("owsd")
CHECKPOINT, SUMMARY = "cloud.ckpt", "cloud.json"


def parser() -> OWSDArgumentParser:
    parser = OWSDArgumentParser(prog="owsd train-cloud", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="the cloud's YAML (trainer, model, data)")
    parser.add_argument("--seed_everything", type=int, default=0, help="seed of the classifier's init and batches")
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.set_defaults({f"trainer.{name}": value for name, value in quiet_trainer_defaults().items()})
    parser.add_lightning_class_args(CloudClassifierModule, "model")
    parser.add_lightning_class_args(CloudTrainingData, "data")
    parser.link_arguments("model.input_size", "data.input_size")
    parser.add_argument("--out", type=Path, required=True, help="new (or empty) folder for the cloud")
    return parser


def main(argv: list[str]) -> None:
    config, objects, config_yaml = parse(parser(), argv)
    data: CloudTrainingData = objects.data
    split = data.split  # a split the source cannot meet fails before anything is written
    log.info("cloud split: %d labels, %d training and %d validation images", len(split.labels), len(split.train),
             len(split.val))  # fmt: skip
    with OutputFolder(config.out, config_yaml) as folder:
        shutil.rmtree(folder / "lightning", ignore_errors=True)  # an interrupted run trains again from the start
        seed_everything(config.seed_everything, verbose=False)
        started = time.perf_counter()
        model = CloudClassifierModule(**config.model.as_dict())
        trainer = Trainer(**{**objects.trainer, "default_root_dir": folder / "lightning"})
        with torch_threads(torch.get_num_threads()):
            trainer.fit(model, datamodule=data)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:  # the best epoch's weights, not the last epoch's
            model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        seconds = time.perf_counter() - started
        hp = model.hparams
        description = {
            "architecture": hp.architecture,
            "width": hp.width,
            "input_size": hp.input_size,
            "mean": list(hp.mean),
            "std": list(hp.std),
            "classes": list(hp.classes),
            "trained_on_images": {data.source.provenance or type(data.source).__name__: data.image_ids},
        }
        save_cloud_checkpoint(folder / CHECKPOINT, model.classifier, description)
        summary = {
            "source": data.source.identity,
            "cloud_split": asdict(data.cloud_split),
            "classes": description["classes"],
            "images": {"train": len(split.train), "val": len(split.val)},
            "epochs": trainer.current_epoch,
            "train_seconds": round(seconds, 1),
            "val_top1": validation_accuracy(folder / CHECKPOINT, data),
        }
        (folder / SUMMARY).write_text(json.dumps(summary, indent=2))
    accuracy = summary["val_top1"]
    shown = "no validation images" if accuracy is None else f"validation top-1 {accuracy:.3f}"
    log.info("trained %s in %d epochs (%.0f s): %s; wrote %s", hp.architecture, summary["epochs"], seconds, shown,
             config.out / CHECKPOINT)  # fmt: skip


def validation_accuracy(checkpoint: Path, data: CloudTrainingData) -> float | None:
    """Top-1 of the written checkpoint on the validation images, loaded as any run loads it: through `HubCloud`,
    from the unscrambled images at `data.image_size`."""
    if not data.split.val:
        return None
    client = HubCloud(checkpoint=str(checkpoint)).open()
    class_of: dict[int, Any] = {label: index for index, label in enumerate(data.split.labels)}
    correct = 0
    for start in range(0, len(data.split.val), 64):
        positions = data.split.val[start : start + 64]
        pixels = torch.stack([data.source.load(position, data.image_size) for position in positions])
        answers = client.classify_plaintext(pixels).argmax(1)
        truth = torch.tensor([class_of[data.source.items[position][1]] for position in positions])
        correct += int((answers == truth).sum())
    return correct / len(data.split.val)
