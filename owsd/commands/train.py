"""`owsd fit|validate|test --config FILE`: LightningCLI over the IIN and the data module.

Before any trainer entry point the cache is filled (a no-op on a cache hit), on every process the `trainer:`
section asks for. Then the other processes end, and rank 0 alone, on one device, trains, tests the IIN on its
best checkpoint, trains and tests each configured comparison (ablations, plaintext upper bound) the same way,
and prints one table of test accuracies (`owsd.distributed`).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from owsd.commands.settings import OWSDArgumentParser, add_sections, link_precision, quiet_trainer_defaults
from owsd.components.iin import IINInput
from owsd.datamodule import OWSDDataModule
from owsd.distributed import end_distributed, precompute_trainer, single_process_settings
from owsd.iin_module import IINModule
from owsd.prediction import check_contract, load_checkpoint
from owsd.threads import torch_threads
from owsd.training import evaluate_best, measure, results_table
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
        link_precision(parser)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """A `--ckpt_path` that is not an IIN checkpoint is one line, before Lightning reads its hyperparameters."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None:
            load_checkpoint(Path(ckpt_path))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """`validate` and `test` print their metrics and write nothing: only `fit` writes under
        `trainer.default_root_dir`, so its newest run there is always the newest fit (`owsd predict` relies on it)."""
        if self.subcommand not in ("validate", "test"):
            return super().instantiate_trainer(**kwargs)
        trainer = super().instantiate_trainer(**kwargs, logger=False, enable_checkpointing=False)
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, SaveConfigCallback)]  # its config.yaml
        return trainer

    def before_fit(self) -> None:
        """Check the checkpoint given (resumed or evaluated: it must have been trained on this pipeline's
        inputs), fill the cache on every process and thread, then train on rank 0 alone, on as many threads as
        a small network uses."""
        settings = dict(self._get(self.config_init, "trainer", default={}))
        precompute = precompute_trainer(settings, self.datamodule.pipeline.precompute_timeout)
        ckpt_path = self._get(self.config, "ckpt_path")
        if ckpt_path is not None and precompute.global_rank == 0:
            check_contract(load_checkpoint(Path(ckpt_path)), self.datamodule.pipeline, ckpt_path)
        self.datamodule.validates  # noqa: B018  (a split that cannot validate fails before any image is sent)
        self.datamodule.prepare_cache(precompute)  # distributed: each process takes its share of the batches
        end_distributed(precompute)  # the other processes end here
        self.trainer = self.instantiate_trainer(**single_process_settings({}, precompute))
        if wandb_logger(self.trainer) is not None:  # CSV has no place for a config, images or a chart
            config = yaml.safe_load(self._parser(self.subcommand).dump(self.config[self.subcommand]))
            self.trainer.callbacks.append(WandbRunMedia(config))
        self._reseed()  # the IIN starts from the same state whether or not precompute ran
        self._threads = ExitStack()
        self._threads.enter_context(torch_threads(self._get(self.config, "iin_threads")))

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        seed = self._get(self.config, "seed_everything")
        seed = None if seed is False else seed
        results = evaluate_best(self.trainer, self.model)
        compare = self._get(self.config, "compare")
        threads = self._get(self.config, "iin_threads")
        single = single_process_settings({}, self.trainer)
        make_trainer = lambda: self.instantiate_trainer(**single)  # noqa: E731
        results |= measure(self.datamodule, self.model, make_trainer, compare, seed, threads=threads)
        self._threads.close()
        print(results_table(results, len(self.datamodule.pairs["test"])))

    def after_validate(self) -> None:
        self._threads.close()

    after_test = after_validate

    def _reseed(self) -> None:
        seed = self._get(self.config, "seed_everything")
        if seed is not None and seed is not False:
            seed_everything(seed, verbose=False)


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
