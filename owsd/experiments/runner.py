"""The seed runner: one config, repeated over seeds (and training sizes, ensembles, recipes), from one cache.

Every split of every repetition is computed first, so that a setting the data cannot meet fails before any
work; the union of their images is precomputed once; then each repetition costs only IIN fits and the
local baselines. A repetition that crashes is recorded as failed, with its error, never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer, seed_everything

from owsd.baselines import classifier_head_accuracy, linear_probe_accuracy
from owsd.components.encoder import classifier_head
from owsd.data.selection import Split
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.experiments.settings import ExperimentSettings, Recipe
from owsd.iin_module import PLAINTEXT_CLOUD, IINModule, fit_and_test

log = logging.getLogger(__name__)

LINEAR_PROBE, ENCODER_HEAD = "linear_probe", "encoder_head"


@dataclass(frozen=True)
class Repetition:
    """One run: a seed, and the training size, ensemble size and recipe it is run with."""

    seed: int
    recipe: Recipe
    train_per_label: int | None
    encoders: int

    def describe(self) -> str:
        parts = [f"seed {self.seed}", f"recipe {self.recipe.name}", f"{self.encoders} encoder(s)"]
        if self.train_per_label is not None:
            parts.append(f"{self.train_per_label} training images per label")
        return ", ".join(parts)


def repetitions(settings: ExperimentSettings, encoders: int) -> list[Repetition]:
    sizes = settings.ensemble_sizes or [encoders]
    if max(sizes) > encoders:
        raise ConfigError(f"experiment.ensemble_sizes={sizes} but data.encoders lists {encoders}")
    return [
        Repetition(seed, recipe, per_label, size)
        for recipe in settings.all_recipes
        for size in sizes
        for per_label in settings.train_per_label or [None]
        for seed in settings.seeds
    ]


def data_for(base: OWSDDataModule, repetition: Repetition) -> OWSDDataModule:
    """The base pipeline with this repetition's split: a new split seed and, where labels are drawn, new labels."""
    split = base.split_settings
    labels = replace(split.labels, seed=repetition.seed) if split.labels.count is not None else split.labels
    split = replace(split, seed=repetition.seed, labels=labels, train_per_label=repetition.train_per_label)
    return base.replace(split=split)


class SeedRunner:
    """Runs `settings` over the base pipeline `data`, training IINs with `model_settings` (the `model:` section)
    on Trainers built from `trainer_settings` (the `trainer:` section)."""

    def __init__(
        self,
        data: OWSDDataModule,
        model_settings: dict[str, Any],
        trainer_settings: dict[str, Any],
        settings: ExperimentSettings,
    ) -> None:
        self.head = classifier_head(data.encoders[0]) if settings.encoder_head else None
        if self.head is not None:
            outputs = self.head(torch.zeros(1, data.encoders[0].embedding_dim)).shape[1]
            if outputs != len(data.source.classes):
                raise ConfigError(
                    f"experiment.encoder_head: {data.encoders[0].name}'s head has {outputs} classes but the "
                    f"source has {len(data.source.classes)} labels; the head applies only to its own classes"
                )
        self.base, self.settings = data, settings
        self.model_settings, self.trainer_settings = model_settings, trainer_settings
        self.repetitions = repetitions(settings, len(data.encoders))
        self.fits = 0
        self.datasets = {rep: data_for(data, rep) for rep in self.repetitions}
        for pipeline in self.datasets.values():
            pipeline.split  # noqa: B018  (a split the data cannot meet fails here, before any work)

    def precompute(self, trainer: Trainer) -> float:
        """Fill the cache with the union of every repetition's images, in one pass; the seconds it took."""
        started = time.perf_counter()
        union = self.base.replace()
        union.split = Split(  # one pool, cut into one set of fixed batches
            self.base.split.labels,
            sorted({p for pipeline in self.datasets.values() for p in pipeline.split.all}),
            [],
            [],
        )
        union.prepare_cache(trainer)
        return time.perf_counter() - started

    def run(self) -> Iterator[dict[str, Any]]:
        """One record per repetition, in order."""
        for number, repetition in enumerate(self.repetitions, 1):
            log.info("run %d of %d: %s", number, len(self.repetitions), repetition.describe())
            record = {
                "seed": repetition.seed,
                "recipe": repetition.recipe.name,
                "encoders": repetition.encoders,
                "train_per_label": repetition.train_per_label,
            }
            try:
                record.update(self.measure(repetition), status="ok")
            except Exception as error:  # noqa: BLE001  (a crashed repetition is reported, not averaged away)
                log.warning("run %d failed: %s: %s", number, type(error).__name__, error)
                record.update(status="failed", error=f"{type(error).__name__}: {error}")
            finally:  # its cached pairs are not needed again: memory stays that of one repetition
                self.datasets[repetition].datasets.clear()
            yield record

    def measure(self, repetition: Repetition) -> dict[str, Any]:
        data = self.datasets[repetition]
        data.setup()
        if repetition.encoders != len(data.encoders):
            data = data.with_first_encoders(repetition.encoders)
        methods: dict[str, dict[str, float]] = {}
        for iin_input in self.settings.inputs:
            seed_everything(repetition.seed, verbose=False)
            methods.update(self.fit(data, iin_input, repetition.recipe))
        if self.settings.linear_probe:
            methods[LINEAR_PROBE] = linear_probe(data, repetition.seed)
        test = data.datasets["test"].tensors
        if self.head is not None:
            width = data.encoders[0].embedding_dim
            methods[ENCODER_HEAD] = classifier_head_accuracy(
                self.head, test["embedding"][:, :width], test["label"], data.split.labels
            )
        return {
            "labels": data.class_names,
            "images": {name: len(data.datasets[name]) for name in ("train", "val", "test")},
            "methods": methods,
        }

    def fit(self, data: OWSDDataModule, iin_input: str, recipe: Recipe) -> dict[str, dict[str, float]]:
        """Train and test one IIN; its metrics (and the cloud's on plaintext, when measured)."""
        model = IINModule(**{**self.model_settings, **recipe.model_overrides, "iin_input": iin_input})
        self.fits += 1  # each fit its own folder: checkpoints of one fit are never mistaken for another's
        root = Path(self.trainer_settings.get("default_root_dir") or ".") / f"fit-{self.fits}"
        trainer_settings = {**self.trainer_settings, "default_root_dir": root}
        if recipe.max_epochs is not None:
            trainer_settings["max_epochs"] = recipe.max_epochs
        trainer = Trainer(**trainer_settings)
        started = time.perf_counter()
        metrics = fit_and_test(trainer, model, data)
        seconds = time.perf_counter() - started
        results = {iin_input: _named(metrics, iin_input) | {"epochs": trainer.current_epoch, "seconds": seconds}}
        if f"test/{PLAINTEXT_CLOUD}/top1" in metrics:
            results[PLAINTEXT_CLOUD] = _named(metrics, PLAINTEXT_CLOUD)
        return results


def linear_probe(data: OWSDDataModule, seed: int) -> dict[str, float]:
    """The linear-probe baseline on the IIN's own training images, scored on its test images."""
    train, test = data.datasets["train"].tensors, data.datasets["test"].tensors
    return linear_probe_accuracy(train["embedding"], train["label"], test["embedding"], test["label"], int(seed))


def _named(metrics: dict[str, float], name: str) -> dict[str, float]:
    """`test/NAME/top1` → `top1` (and `cloud_class_top1` etc.)."""
    prefix = f"test/{name}/"
    return {key[len(prefix) :]: float(value) for key, value in metrics.items() if key.startswith(prefix)}
