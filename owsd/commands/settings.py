"""What every experiment command shares: the config parser over the fit config's sections, and Trainers
that keep piped output readable and write nothing where `owsd fit` keeps its runs."""

from __future__ import annotations

import sys
import tempfile
from argparse import ArgumentParser, _SubParsersAction
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import ActionConfigFile, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser

from owsd.analysis.settings import AnalysisSettings
from owsd.commands.parse_errors import one_line
from owsd.components.iin import IINInput
from owsd.datamodule import OWSDDataModule
from owsd.distributed import precompute_trainer, single_process_settings
from owsd.experiments.settings import ExperimentSettings
from owsd.iin_module import IINModule
from owsd.ranges import Count
from owsd.security.settings import AttackSettings
from owsd.threads import SMALL_MODEL_THREADS


class OWSDArgumentParser(LightningArgumentParser):
    """Reports a bad setting in one line (the name and what is wrong), not after a page of usage."""

    def parse_args(self, args: list[str] | None = None, *rest: Any, **kwargs: Any) -> Namespace:
        self._arguments = list(sys.argv[1:] if args is None else args)  # for the config files an error names
        config = super().parse_args(args, *rest, **kwargs)
        subcommand = config.get("subcommand")
        trainer = config.get(f"{subcommand}.trainer" if subcommand else "trainer")
        for name in ("max_epochs", "max_steps", "limit_train_batches"):
            if trainer is not None and trainer.get(name) == 0:  # Lightning would train nothing and test it
                self.error(f"trainer.{name}=0 trains nothing: give at least 1")
        return config

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a nested parser: its caller reports
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        arguments = getattr(self, "_arguments", [])
        subcommands = [a.choices for a in self._actions if isinstance(a, _SubParsersAction)]
        if arguments and subcommands and arguments[0] in subcommands[0]:  # `owsd fit`, not `owsd`
            prog = f"{prog} {arguments[0]}"
        line = one_line(message.strip(), setting_names(self), arguments)
        sys.stderr.write(f"{prog}: error: {line}\n(`{prog} --help` lists every setting)\n")
        self.exit(2)


def setting_names(parser: ArgumentParser) -> list[str]:
    """Every setting a parser and its subcommands' parsers know, dotted (`data.scrambler.key_file`)."""
    names = []
    for action in parser._actions:
        if isinstance(action, _SubParsersAction):
            names += [name for subparser in action.choices.values() for name in setting_names(subparser)]
        elif action.dest != "help":
            names.append(action.dest)
    return names


def quiet_trainer_defaults() -> dict[str, Any]:
    """Progress bars and model summaries only on a terminal; in a pipe, the log lines tell each stage."""
    interactive = sys.stderr.isatty()
    return {"enable_progress_bar": interactive, "enable_model_summary": interactive}


def experiment_parser(prog: str, description: str, out: bool = True) -> LightningArgumentParser:
    """A parser that reads the same YAML as `owsd fit` (trainer, model, data, compare, seed_everything)
    and adds `--out` (unless `out` is false); the command adds its own section."""
    parser = OWSDArgumentParser(prog=prog, description=description)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="the experiment's YAML, as for `owsd fit`")
    parser.add_argument("--seed_everything", type=int | bool, default=0, help="seed of the IINs trained here")
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.set_defaults({f"trainer.{name}": value for name, value in quiet_trainer_defaults().items()})
    parser.add_lightning_class_args(IINModule, "model")
    parser.add_lightning_class_args(OWSDDataModule, "data")
    parser.add_argument("--compare", type=list[IINInput], default=[], help="read from fit configs; unused here")
    add_sections(parser)
    link_precision(parser)
    if out:
        parser.add_argument("--out", type=Path, required=True, help="new (or empty) folder for the results")
    return parser


def add_sections(parser: LightningArgumentParser) -> None:
    """The `analysis:`, `attack:` and `experiment:` sections and `iin_threads`, known to every command so that
    one YAML serves them all."""
    parser.add_argument(
        "--iin_threads",
        type=Count,
        default=SMALL_MODEL_THREADS,
        help="torch threads for IIN fits and the attacks' small models (precompute uses every core)",
    )
    parser.add_class_arguments(AnalysisSettings, "analysis", fail_untyped=True, sub_configs=True)
    parser.add_class_arguments(AttackSettings, "attack", fail_untyped=True, sub_configs=True)
    parser.add_class_arguments(ExperimentSettings, "experiment", fail_untyped=True, sub_configs=True)


def link_precision(parser: LightningArgumentParser) -> None:
    """`trainer.precision` is also the pipeline's: the encoders and the cloud run at it, the cache is keyed by it."""
    parser.link_arguments("trainer.precision", "data.precision")


def parse(parser: LightningArgumentParser, argv: list[str]) -> tuple[Namespace, Namespace, str]:
    """(config, instantiated objects, the config as YAML); the command name in argv[0] is skipped.

    The YAML is dumped first: instantiating replaces parts of the config by objects."""
    config = parser.parse_args(argv[1:])
    dumped = parser.dump(config)
    return config, parser.instantiate_classes(config), dumped


@contextmanager
def scratch_trainer_settings(objects: Namespace, precompute: Trainer | None = None) -> Iterator[dict[str, Any]]:
    """The `trainer:` section for the stages that run on rank 0 alone (`owsd.distributed`): one process on the
    device `precompute` gives rank 0, checkpoints and logs in a temporary folder, removed afterwards (only
    `owsd fit` writes under `trainer.default_root_dir`, so the newest folder there is always a fit's)."""
    if precompute is None:  # a command on rank 0 alone: the Trainer only says which device is rank 0's
        precompute = precompute_trainer(objects.trainer, objects.data.pipeline.precompute_timeout, launched=False)
    with tempfile.TemporaryDirectory(prefix="owsd-scratch-") as scratch:
        yield single_process_settings({**objects.trainer, "default_root_dir": scratch}, precompute)


def trainer_factory(settings: dict[str, Any]) -> Callable[[], Trainer]:
    """Fresh Trainers with these settings (one per precompute or IIN fit, as `owsd fit` does)."""
    return lambda: Trainer(**settings)
