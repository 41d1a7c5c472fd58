"""`owsd fit|validate|test --config FILE` (LightningCLI) and `owsd keygen PATH`.

Before any trainer entry point the cache is filled (a no-op on a cache hit). After `fit`, the IIN is
tested on its best checkpoint and each configured comparison (ablations, plaintext upper bound) is
trained and tested the same way, and one table of test accuracies is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from owsd.components.iin import IINInput
from owsd.components.key import Key, save_key
from owsd.datamodule import OWSDDataModule
from owsd.errors import OWSDError
from owsd.iin_module import PLAINTEXT_CLOUD, IINModule

log = logging.getLogger("owsd")


class OWSDCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--compare",
            type=list[IINInput],
            default=[],
            help="after fit, also train and test IINs with these inputs (e.g. embedding, cloud)",
        )

    def before_fit(self) -> None:
        self.datamodule.prepare_cache(self.trainer)

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        results = {self.model.name: self._test(self.trainer, self.model)}
        settings = {k: v for k, v in self.model.hparams.items() if not k.startswith("_")}  # drop CLI bookkeeping
        for iin_input in self._get(self.config, "compare"):
            trainer = self.instantiate_trainer()
            model = IINModule(**{**settings, "iin_input": iin_input, "input_dim": None})
            trainer.fit(model, datamodule=self.datamodule)
            results[model.name] = self._test(trainer, model)
        if self.trainer.is_global_zero:
            print(results_table(results, len(self.datamodule.datasets["test"])))

    @staticmethod
    def _test(trainer, model: IINModule) -> dict[str, float]:
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        return trainer.test(model, datamodule=trainer.datamodule, ckpt_path=ckpt, verbose=False)[0]


def results_table(results: dict[str, dict[str, float]], test_images: int) -> str:
    """Test top-1/top-5 per IIN input, with the cloud-agreement and plaintext-cloud rows when measured."""
    lines = [f"OWSD test accuracy ({test_images} images)", f"{'':34}{'top-1':>8}{'top-5':>8}"]
    plaintext: dict[str, float] = {}
    for name, metrics in results.items():
        label = f"IIN [{name}]" + ("  (upper bound: no scrambling)" if "plaintext" in name else "")
        lines.append(f"{label:34}{metrics[f'test/{name}/top1']:8.3f}{metrics[f'test/{name}/top5']:8.3f}")
        if f"test/{name}/cloud_class_top1" in metrics:
            agreement = metrics[f"test/{name}/cloud_class_top1"], metrics[f"test/{name}/cloud_class_top5"]
            lines.append(f"{'  vs cloud plaintext class':34}{agreement[0]:8.3f}{agreement[1]:8.3f}")
        plaintext.update({k: v for k, v in metrics.items() if k.startswith(f"test/{PLAINTEXT_CLOUD}/")})
    if plaintext:
        top1, top5 = plaintext[f"test/{PLAINTEXT_CLOUD}/top1"], plaintext[f"test/{PLAINTEXT_CLOUD}/top5"]
        lines.append(f"{'cloud on plaintext (upper bound)':34}{top1:8.3f}{top5:8.3f}")
    return "\n".join(lines)


def keygen(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="owsd keygen", description="Write a new 256-bit key file (mode 0600).")
    parser.add_argument("path", type=Path)
    path = parser.parse_args(argv).path
    key = Key.generate()
    save_key(key, path)
    print(f"wrote key {key.fingerprint} to {path}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args[:1] == ["keygen"]:
            keygen(args[1:])
        else:
            OWSDCLI(IINModule, OWSDDataModule, args=argv, save_config_kwargs={"overwrite": True})
    except OWSDError as error:
        print(f"owsd: error: {error}", file=sys.stderr)
        sys.exit(2)
