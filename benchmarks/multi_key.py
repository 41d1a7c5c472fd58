"""The paper's multi-key idea, measured: K keys active at once, one IIN per key, their answers averaged.

Each key scrambles the config's images anew (its own cache) and gets its own IIN (the config's recipe and
split); the combined prediction averages the K IINs' probabilities on the test images. Prints test top-1
and top-5 of each key's IIN, of the combination, and of the embedding-only IIN (which needs no key):

    python benchmarks/multi_key.py --config lightning_configs/demo.yaml --key_count 3
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything

from owsd.__main__ import keep_freed_memory
from owsd.baselines import top_k_accuracy
from owsd.cli import configure_logging
from owsd.commands.settings import experiment_parser, parse
from owsd.datamodule import OWSDDataModule
from owsd.iin_module import IINModule


def test_probabilities(data: OWSDDataModule, model_settings: dict, trainer_settings: dict, iin_input: str):
    """Train one IIN on `data` as `owsd fit` does; its best checkpoint's probabilities on the test images."""
    seed_everything(0, verbose=False)
    model = IINModule(**{**model_settings, "iin_input": iin_input})
    trainer = Trainer(**trainer_settings)
    trainer.fit(model, datamodule=data)
    best = IINModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path).eval()
    with torch.no_grad():
        return torch.softmax(best(data.pairs["test"].tensors), dim=1)


def main(argv: list[str]) -> None:
    parser = experiment_parser("multi_key", __doc__.splitlines()[0])
    parser.add_argument("--key_count", type=int, default=3)
    config, objects, _ = parse(parser, ["multi_key", "--out", "unused", *argv])
    configure_logging()
    base: OWSDDataModule = objects.data
    model_settings = config.model.as_dict()
    with tempfile.TemporaryDirectory() as scratch:
        trainer_settings = {**objects.trainer, "default_root_dir": scratch, "logger": False}
        results, combined = {}, []
        for number in range(config.key_count):
            settings = replace(
                base.pipeline.scrambler, key_file=Path(scratch) / f"key{number}.key", create_key=True,
                ledger_file=Path(scratch) / "ledger.sqlite",
            )  # fmt: skip
            pipeline = base.pipeline.replace(
                scrambler=settings, plaintext_baseline=False, cache_dir=Path(scratch) / "cache"
            )
            data = OWSDDataModule.of(pipeline, base.split_settings, base.batch_size)
            data.prepare_cache(Trainer(**trainer_settings))
            data.setup()
            probabilities = test_probabilities(data, model_settings, trainer_settings, "embedding+cloud")
            labels = data.pairs["test"].tensors["label"]
            results[f"key {number + 1} IIN (embedding+cloud)"] = top_k_accuracy(
                probabilities.argsort(1, True).numpy(), labels
            )
            combined.append(probabilities)
            if number == 0:
                alone = test_probabilities(data, model_settings, trainer_settings, "embedding")
                results["IIN on the embedding alone (no key)"] = top_k_accuracy(alone.argsort(1, True).numpy(), labels)
        average = torch.stack(combined).mean(0)
        results[f"{config.key_count} keys, probabilities averaged"] = top_k_accuracy(
            average.argsort(1, True).numpy(), labels
        )
    print(f"{'test accuracy on ' + str(len(labels)) + ' images':44}{'top-1':>8}{'top-5':>8}")
    for name, scores in results.items():
        print(f"{name:44}{scores['top1']:8.3f}{scores['top5']:8.3f}")


if __name__ == "__main__":
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])
    main(sys.argv[1:])
