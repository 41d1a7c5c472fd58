"""The seed runner: one config, repeated over seeds (and training sizes, ensembles, recipes), from one cache.

Every split of every repetition is computed first, so that a setting the data cannot meet fails before any
work; the union of their images is precomputed once; then each repetition costs only IIN fits and the
local baselines. A repetition that crashes is recorded as failed, with its error, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer

from owsd.baselines import classifier_head_accuracy
from owsd.components.encoder import classifier_head
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.experiments.records import repetition_of
from owsd.experiments.settings import ExperimentSettings, Recipe
from owsd.iin_module import IINModule
from owsd.precompute import fill_cache
from owsd.training import ENCODER_HEAD, measure

log = logging.getLogger(__name__)


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
    return base.with_split(split)


class SeedRunner:
    """Runs `settings` over the base data `data`, training IINs with `model_settings` (the `model:` section)
    on Trainers built from `trainer_settings` (the `trainer:` section), on `threads` torch threads."""

    def __init__(
        self,
        data: OWSDDataModule,
        model_settings: dict[str, Any],
        trainer_settings: dict[str, Any],
        settings: ExperimentSettings,
        threads: int,
    ) -> None:
        first = data.pipeline.encoders[0]
        self.head = classifier_head(first) if settings.encoder_head else None
        if self.head is not None:
            outputs = self.head(torch.zeros(1, first.embedding_dim)).shape[1]
            classes = len(data.pipeline.source.classes)
            if outputs != classes:
                raise ConfigError(
                    f"experiment.encoder_head: {first.name}'s head has {outputs} classes but the "
                    f"source has {classes} labels; the head applies only to its own classes"
                )
        self.base, self.settings, self.threads = data, settings, threads
        self.model_settings, self.trainer_settings = model_settings, trainer_settings
        self.repetitions = repetitions(settings, len(data.pipeline.encoders))
        self.fits = 0
        self.data = {rep: data_for(data, rep) for rep in self.repetitions}
        for repetition_data in self.data.values():
            repetition_data.split  # noqa: B018  (a split the data cannot meet fails here, before any work)

    def precompute(self, trainer: Trainer) -> float:
        """Fill the cache with the union of every repetition's images, in one pass; the seconds it took."""
        started = time.perf_counter()
        union = sorted({p for data in self.data.values() for p in data.split.all})
        fill_cache(self.base.pipeline, union, trainer)
        return time.perf_counter() - started

    def run(self, skip: list[dict[str, Any]] = ()) -> Iterator[dict[str, Any]]:
        """One record per repetition, in order, but for the repetitions that `skip` holds records of."""
        done = {repetition_of(record) for record in skip}
        for number, repetition in enumerate(self.repetitions, 1):
            record = {
                "seed": repetition.seed,
                "recipe": repetition.recipe.name,
                "encoders": repetition.encoders,
                "train_per_label": repetition.train_per_label,
            }
            if repetition_of(record) in done:
                self.data[repetition].pairs.clear()
                continue
            log.info("run %d of %d: %s", number, len(self.repetitions), repetition.describe())
            try:
                record.update(self.measure(repetition), status="ok")
            except Exception as error:  # noqa: BLE001  (a crashed repetition is reported, not averaged away)
                log.warning("run %d failed: %s: %s", number, type(error).__name__, error)
                record.update(status="failed", error=f"{type(error).__name__}: {error}")
            finally:  # its row indices are not needed again (the rows themselves stay in the shared table)
                self.data[repetition].pairs.clear()
            yield record

    def measure(self, repetition: Repetition) -> dict[str, Any]:
        data = self.data[repetition]
        data.setup()
        if repetition.encoders != len(data.pipeline.encoders):
            data = data.with_first_encoders(repetition.encoders)
        model = IINModule(**{**self.model_settings, **repetition.recipe.model_overrides})
        methods = measure(data, model, self.make_trainer(repetition.recipe), self.settings.inputs, repetition.seed,
                          self.settings.linear_probe, self.threads)  # fmt: skip
        if self.head is not None:
            test = data.pairs["test"]
            width = data.pipeline.encoders[0].embedding_dim
            methods[ENCODER_HEAD] = classifier_head_accuracy(
                self.head, test.column("embedding")[:, :width], test.labels, data.split.labels
            )
        return {
            "labels": data.class_names,
            "images": {name: len(data.pairs[name]) for name in ("train", "val", "test")},
            "split_sha256": split_digest(data),
            "methods": methods,
        }

    def make_trainer(self, recipe: Recipe) -> Callable[[], Trainer]:
        """Fresh Trainers for one recipe, each fit in its own folder: checkpoints of one fit are never
        mistaken for another's."""

        def trainer() -> Trainer:
            self.fits += 1
            root = Path(self.trainer_settings.get("default_root_dir") or ".") / f"fit-{self.fits}"
            settings = {**self.trainer_settings, "default_root_dir": root}
            if recipe.max_epochs is not None:
                settings["max_epochs"] = recipe.max_epochs
            return Trainer(**settings)

        return trainer


def split_digest(data: OWSDDataModule) -> str:
    """What names a repetition's images: a hash of its labels and its train, validation and test image ids, so
    that results measured in two runs are paired only on the same split (`owsd.experiments.shared_baselines`)."""
    split, pipeline = data.split, data.pipeline
    parts = {
        "labels": split.labels,
        **{part: pipeline.image_ids(getattr(split, part)) for part in ("train", "val", "test")},
    }
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
