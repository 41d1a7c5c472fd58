"""The keys an assessment scrambles under: fresh ones of its own, never the user's key.

An attack or an analysis sends thousands of images; under the user's key they would be exposures of that key
(and spend its budget) for the sake of a measurement. So `owsd attack` and `owsd analyze` draw `count` new
keys, measure under each, and report mean (std) over them: one key's figures say nothing about the next key's.
The keys, and the caches filled under them, live in the command's partial output folder (owner-only), so an
interrupted assessment resumes under the same keys; they are deleted once its results are written. The
ledger records each as an assessment key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from owsd.components.cloud import InProcessCloud
from owsd.components.key import Key, save_key
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.files import atomic_write, owner_only_folder, read_record
from owsd.pipeline import Pipeline

log = logging.getLogger(__name__)

WORKSPACE = ".assessment"  # inside the command's partial output folder


@dataclass(frozen=True)
class AssessmentKeys:
    """Args:
    count: fresh keys to measure under (figures are mean (std) over them).
    seed: derive the keys from this number instead of the OS's randomness, so that a run can be repeated
        figure for figure; such keys are public, so this needs an in-process cloud.
    remote_cloud: accept a cloud that is not in-process: the assessment then sends the private images,
        scrambled under the fresh keys, to that service.
    """

    count: int = 3
    seed: int | None = None
    remote_cloud: bool = False

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"keys.count={self.count} must be at least 1")

    def check(self, pipeline: Pipeline, section: str) -> None:
        """Refuse a cloud outside this process unless the user said yes, naming what would be sent."""
        if isinstance(pipeline.cloud, InProcessCloud):
            return
        cloud = f"{type(pipeline.cloud).__name__} at {pipeline.cloud.location}"
        if self.seed is not None:
            raise ConfigError(
                f"{section}.keys.seed derives keys anybody can recompute, and data.cloud ({cloud}) is not in-process: "
                "images scrambled under a public key must never leave; unset the seed"
            )
        if not self.remote_cloud:
            raise ConfigError(
                f"data.cloud ({cloud}) is not in-process: this assessment would send images of the private source, "
                f"scrambled under {self.count} fresh keys, to it; pass --{section}.keys.remote_cloud true to accept "
                "that, or assess against an in-process copy of the cloud"
            )

    def pipelines(self, folder: Path, pipeline: Pipeline, command: str) -> list[Pipeline]:
        """The configured pipeline under each assessment key (created on first use, kept for a resume), with
        its cache in the workspace and no budget: the user's key file is never read."""
        workspace = owner_only_folder(folder / WORKSPACE)
        pipelines = []
        for index in range(self.count):
            path = workspace / f"key-{index}"
            if not path.exists():
                save_key(self._key(index), path)
            scrambler = replace(
                pipeline.scrambler, key_file=str(path), create_key=False, key_budget=None, key_budget_file=None
            )
            pipelines.append(pipeline.replace(scrambler=scrambler, cache_dir=workspace / "cache", assessment=command))
        return pipelines

    def measure(
        self, folder: Path, data: OWSDDataModule, command: str, measure: Callable[[OWSDDataModule, int], Any]
    ) -> list[Any]:
        """`measure(data under key i, i)` for every key, each one's figures (JSON) kept in the workspace as it
        finishes, so that a resumed assessment skips the keys it has measured."""
        figures = []
        for index, pipeline in enumerate(self.pipelines(folder, data.pipeline, command)):
            done = folder / WORKSPACE / f"figures-{index}.json"
            if (measured := read_record(done, "this key is measured again")) is not None:
                figures.append(measured)
                continue
            log.info(
                "%s under assessment key %d of %d (%s)", command, index + 1, self.count, pipeline.key().fingerprint
            )
            measured = measure(OWSDDataModule.of(pipeline, data.split_settings, data.batch_size), index)
            atomic_write(done, lambda path, measured=measured: path.write_text(json.dumps(measured)))
            figures.append(measured)
        return figures

    def _key(self, index: int) -> Key:
        if self.seed is None:
            return Key.generate()
        return Key(hashlib.sha256(f"owsd/assessment-key/{self.seed}/{index}".encode()).digest())


def discard(folder: Path) -> None:
    """Delete the assessment keys and their caches once the results are written."""
    shutil.rmtree(folder / WORKSPACE, ignore_errors=True)
