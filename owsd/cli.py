"""`owsd fit|validate|test --config FILE` (LightningCLI) and `owsd keygen PATH`.

Before any trainer entry point the cache is filled (a no-op on a cache hit). After `fit`, the IIN is
tested on its best checkpoint and each configured comparison (ablations, plaintext upper bound) is
trained and tested the same way, and one table of test accuracies is printed.
"""

from __future__ import annotations

import logging
import sys

from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from owsd.components.iin import IINInput
from owsd.datamodule import OWSDDataModule
from owsd.errors import OWSDError
from owsd.iin_module import PLAINTEXT_CLOUD, IINModule
from owsd.keygen import keygen

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
        self._reseed()  # the IIN starts from the same state whether or not precompute ran

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        results = {self.model.name: self._test(self.trainer, self.model)}
        settings = {k: v for k, v in self.model.hparams.items() if not k.startswith("_")}  # drop CLI bookkeeping
        for iin_input in self._get(self.config, "compare"):
            self._reseed()
            trainer = self.instantiate_trainer()
            model = IINModule(**{**settings, "iin_input": iin_input, "input_dim": None})
            trainer.fit(model, datamodule=self.datamodule)
            results[model.name] = self._test(trainer, model)
        if self.trainer.is_global_zero:
            print(results_table(results, len(self.datamodule.datasets["test"])))

    def _reseed(self) -> None:
        seed = self._get(self.config, "seed_everything")
        if seed is not None and seed is not False:
            seed_everything(seed, verbose=False)

    @staticmethod
    def _test(trainer: Trainer, model: IINModule) -> dict[str, float]:
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        return trainer.test(model, datamodule=trainer.datamodule, ckpt_path=ckpt, verbose=False)[0]


ROLES = {
    "embedding+cloud": "OWSD",
    "embedding": "ablation",
    "cloud": "ablation",
    "embedding+plaintext_cloud": "upper bound",
}


def results_table(results: dict[str, dict[str, float]], test_images: int) -> str:
    """Test top-1/top-5 per IIN input, with the cloud-agreement and plaintext-cloud rows when measured."""

    def row(label: str, metrics: dict[str, float], prefix: str) -> str:
        return f"{label:44}{metrics[f'{prefix}top1']:8.3f}{metrics[f'{prefix}top5']:8.3f}"

    lines = [f"{f'OWSD test accuracy on {test_images} images':44}{'top-1':>8}{'top-5':>8}"]
    plaintext: dict[str, float] = {}
    for name, metrics in results.items():
        lines.append(row(f"IIN {name} ({ROLES[name]})", metrics, f"test/{name}/"))
        if f"test/{name}/cloud_class_top1" in metrics:
            lines.append(row("  agreement with the cloud on plaintext", metrics, f"test/{name}/cloud_class_"))
        plaintext.update({k: v for k, v in metrics.items() if k.startswith(f"test/{PLAINTEXT_CLOUD}/")})
    if plaintext:
        lines.append(row("cloud on plaintext images (upper bound)", plaintext, f"test/{PLAINTEXT_CLOUD}/"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.INFO)
    try:
        if args[:1] == ["keygen"]:
            keygen(args[1:])
        else:
            OWSDCLI(IINModule, OWSDDataModule, args=argv, save_config_kwargs={"overwrite": True})
    except OWSDError as error:
        print(f"owsd: error: {error}", file=sys.stderr)
        sys.exit(2)
