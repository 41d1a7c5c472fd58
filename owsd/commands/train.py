"""`owsd fit|validate|test --config FILE`: LightningCLI over the IIN and the data module.

Before any trainer entry point the cache is filled (a no-op on a cache hit). After `fit`, the IIN is
tested on its best checkpoint and each configured comparison (ablations, plaintext upper bound) is
trained and tested the same way, and one table of test accuracies is printed.
"""

from __future__ import annotations

import sys

import yaml
from lightning.pytorch import seed_everything
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from owsd.commands.settings import OWSDArgumentParser, add_sections, quiet_trainer_defaults
from owsd.components.iin import IINInput
from owsd.datamodule import OWSDDataModule
from owsd.experiments.report import METHODS
from owsd.experiments.runner import LINEAR_PROBE, linear_probe
from owsd.iin_module import PLAINTEXT_CLOUD, IINModule, evaluate_best, fit_and_test, variant
from owsd.wandb_media import WandbRunMedia, finish_wandb_run, wandb_logger


class OWSDCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only the trainer entry points this command serves (`owsd predict` is not Lightning's)."""
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name in ("fit", "validate", "test")}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--compare",
            type=list[IINInput],
            default=[],
            help="after fit, also train and test IINs with these inputs (e.g. embedding, cloud)",
        )
        add_sections(parser)  # read by `owsd analyze` and `owsd attack`; unused by the trainer

    def before_fit(self) -> None:
        self.datamodule.prepare_cache(self.trainer)
        if wandb_logger(self.trainer) is not None:  # CSV has no place for a config, images or a chart
            config = yaml.safe_load(self._parser(self.subcommand).dump(self.config[self.subcommand]))
            self.trainer.callbacks.append(WandbRunMedia(config))
        self._reseed()  # the IIN starts from the same state whether or not precompute ran

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        results = {self.model.name: evaluate_best(self.trainer, self.model)}
        for iin_input in self._get(self.config, "compare"):
            self._reseed()
            model = variant(self.model, iin_input)
            results[model.name] = fit_and_test(self.instantiate_trainer(), model, self.datamodule)
        results[LINEAR_PROBE] = linear_probe_metrics(self.datamodule, self._get(self.config, "seed_everything") or 0)
        if self.trainer.is_global_zero:
            print(results_table(results, len(self.datamodule.datasets["test"])))

    def _reseed(self) -> None:
        seed = self._get(self.config, "seed_everything")
        if seed is not None and seed is not False:
            seed_everything(seed, verbose=False)


def linear_probe_metrics(data: OWSDDataModule, seed: int) -> dict[str, float]:
    """The linear-probe baseline, named like IIN test metrics."""
    return {f"test/{LINEAR_PROBE}/{name}": value for name, value in linear_probe(data, seed).items()}


def results_table(results: dict[str, dict[str, float]], test_images: int) -> str:
    """Test top-1/top-5 per IIN input, with the cloud-agreement and plaintext-cloud rows when measured."""

    def row(label: str, metrics: dict[str, float], prefix: str) -> str:
        return f"{label:48}{metrics[f'{prefix}top1']:8.3f}{metrics[f'{prefix}top5']:8.3f}"

    lines = [f"{f'OWSD test accuracy on {test_images} images':48}{'top-1':>8}{'top-5':>8}"]
    plaintext: dict[str, float] = {}
    for name, metrics in results.items():
        lines.append(row(METHODS[name], metrics, f"test/{name}/"))
        if f"test/{name}/cloud_class_top1" in metrics:
            lines.append(row("  agreement with the cloud on plaintext", metrics, f"test/{name}/cloud_class_"))
        plaintext.update({k: v for k, v in metrics.items() if k.startswith(f"test/{PLAINTEXT_CLOUD}/")})
    if plaintext:
        lines.append(row(METHODS[PLAINTEXT_CLOUD], plaintext, f"test/{PLAINTEXT_CLOUD}/"))
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    OWSDCLI(
        IINModule,
        OWSDDataModule,
        args=None if argv == sys.argv[1:] else argv,  # Lightning warns when given the process's own arguments
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "owsd"},
        parser_class=OWSDArgumentParser,
        trainer_defaults=quiet_trainer_defaults(),
    )
    finish_wandb_run()
