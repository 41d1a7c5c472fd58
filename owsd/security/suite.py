"""The attack suite: every attack as a curve over the adversary's resources, under the configured scrambler
and under each defence, plus what each defence costs the IIN and the key budget read off the curves."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import torch
from lightning.pytorch import Trainer

from owsd.attacks.clustering import cluster_agreement
from owsd.attacks.common import pixel_features
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key
from owsd.components.scrambler import Defences, ScramblerSettings
from owsd.data.selection import SplitSettings
from owsd.datamodule import OWSDDataModule
from owsd.iin_module import IINModule
from owsd.pipeline import Pipeline
from owsd.security.budget import key_budget, linkability_verdict
from owsd.security.curves import Curve, Views, clustering_curves, label_leakage_curves, subsample
from owsd.security.defence_cost import defence_costs, defence_name
from owsd.security.known_pairs import Partition, inversion_curves, key_recovery_curves, reconstruction_curves
from owsd.security.linking import changed_embeddings, linkability_curve
from owsd.security.material import Material, gather, scramble, scrambler_for
from owsd.security.settings import AttackSettings
from owsd.threads import SMALL_MODEL_THREADS, torch_threads

log = logging.getLogger(__name__)


@dataclass
class SuiteResult:
    curves: list[Curve]
    defence_costs: list[dict]
    budget: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"curves": [curve.as_dict() for curve in self.curves], "defence_costs": self.defence_costs,
                "budget": self.budget}  # fmt: skip

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> SuiteResult:
        return cls([Curve.from_dict(entry) for entry in saved["curves"]], saved["defence_costs"], saved["budget"])


def run_suite(
    data: OWSDDataModule,
    model: IINModule,
    make_trainer: Callable[[], Trainer],
    settings: AttackSettings,
    threads: int = SMALL_MODEL_THREADS,
) -> SuiteResult:
    """Gather the material (one cache fill), run the attacks, then each defence, then read the budget; the
    attacks' small models and the defences' IINs on `threads` torch threads."""
    split = SplitSettings(
        labels=data.split_settings.labels, images_per_label=settings.images_per_label, seed=settings.seed
    )
    suite_data = data.with_split(split)
    source = data.pipeline.source
    per_label = Counter(source.items[position][1] for position in suite_data.split.all)
    settings.check_fits(len(suite_data.split.all), min(per_label.values()))  # before any expensive work
    original_size = max(settings.pixel_size, settings.reconstruction.output_size)
    material = gather(suite_data, make_trainer(), original_size)
    log.info("attack suite on %d images of %d labels", len(material), len(suite_data.split.labels))
    with torch_threads(threads):
        curves, key_separation = _attack(
            _Runner(data.pipeline, material, settings, len(suite_data.split.labels)), material, settings
        )
    costs = defence_costs(data, model, make_trainer, settings.defences, settings.seed, threads)
    for row in costs:
        if row["defence"] in key_separation:
            row["key_separation_nmi"] = key_separation[row["defence"]]
    budget = {
        "margin": settings.margin,
        "configured": key_budget(curves, settings.margin),
        "defences": {defence_name(d): key_budget(curves, settings.margin, defence_name(d)) for d in settings.defences},
    }
    linkability = [curve for curve in curves if curve.attack == "linkability"]
    if linkability:
        budget["linkability"] = linkability_verdict(linkability[0], settings.margin)
    return SuiteResult(curves, costs, budget)


def _attack(runner: _Runner, material: Material, settings: AttackSettings) -> tuple[list[Curve], dict[str, float]]:
    """Every curve on the configured scrambler, each defence's values added to it, and how well rotated keys
    can be told apart (per rotating defence)."""
    curves = runner.curves(material.scrambled, reference=True)
    key_separation = {}
    for defence in settings.defences:
        log.info("defence %s", defence_name(defence))
        defended = scramble(
            runner.pipeline, material.embeddings, material.image_ids, material.positions, runner.with_defence(defence)
        )
        measured = {curve.key: curve.scrambled for curve in runner.curves(defended, reference=False, defence=defence)}
        for curve in curves:
            if curve.key in measured:
                curve.defences[defence_name(defence)] = measured[curve.key]
        if defence.rotate_every:
            key_separation[defence_name(defence)] = runner.key_separation(defended, defence)
    return curves, key_separation


class _Runner:
    """Runs the selected attacks on one set of scrambled images (the configured ones, or a defence's)."""

    def __init__(self, pipeline: Pipeline, material: Material, settings: AttackSettings, classes: int) -> None:
        self.pipeline, self.material, self.settings = pipeline, material, settings
        r = settings.resources
        self.partition = Partition.draw(len(material), r.public, r.held_out, settings.seed)
        self.original_pixels = pixel_features(material.originals, settings.pixel_size)
        self.classes = classes

    def with_defence(self, defence: Defences) -> ScramblerSettings:
        return replace(self.pipeline.scrambler, defences=defence)

    def curves(self, scrambled: torch.Tensor, reference: bool, defence: Defences | None = None) -> list[Curve]:
        """With `reference`, also the unscrambled and chance curves (and the costliest attacks, which the
        defences skip: reconstruction and key recovery are measured on the configured scrambler only)."""
        s, m, r, seed = self.settings, self.material, self.settings.resources, self.settings.seed
        pixels = pixel_features(scrambled, s.pixel_size)
        views = Views(m.labels, pixels, self.original_pixels)
        if reference:
            views.cloud, views.plaintext_cloud = m.cloud, m.plaintext_cloud
        curves: list[Curve] = []
        if "clustering" in s.attacks:
            curves += clustering_curves(views, r.submissions, self.classes, seed, reference)
        if "label_leakage" in s.attacks:
            curves += label_leakage_curves(views, r.labels_per_class, seed, reference)
        if "inversion" in s.attacks:
            curves += inversion_curves(pixels, m.embeddings, m.labels, self.partition, r.pairs, seed, reference)
        if "linkability" in s.attacks:
            curves.append(self.linkability(reference, defence))
        if reference and "reconstruction" in s.attacks:
            curves += reconstruction_curves(scrambled, m.originals, self.partition, r.pairs, s.reconstruction, seed)
        if reference and "key_recovery" in s.attacks:
            widths = s.key_recovery.channels or sorted({self.pipeline.scrambler.channels, 16}, reverse=True)
            curves += key_recovery_curves(
                self.scramble_width, self.generator_of, m.embeddings, self.partition, r.key_recovery_pairs,
                self.pipeline.scrambler.size, s.key_recovery, seed, widths,
            )  # fmt: skip
        return curves

    def scramble_width(self, channels: int, rows: torch.Tensor) -> torch.Tensor:
        """The bytes a generator of `channels` width sends for these rows (the configured one: as sent)."""
        if channels == self.pipeline.scrambler.channels:
            return self.material.scrambled[rows]
        m, index = self.material, rows.tolist()
        settings = replace(self.pipeline.scrambler, channels=channels)
        ids, positions = [m.image_ids[i] for i in index], [m.positions[i] for i in index]
        return scramble(self.pipeline, m.embeddings[rows], ids, positions, settings)

    def generator_of(self, channels: int) -> ScramblingGenerator:
        """The key's generator of `channels` width (its first, when keys rotate)."""
        settings = replace(self.pipeline.scrambler, channels=channels)
        return scrambler_for(self.pipeline, settings).generator(0)

    def key_separation(self, scrambled: torch.Tensor, defence: Defences) -> float:
        """How well k-means on the pixels alone sorts rotated submissions by key (NMI with the key number):
        near 1, an adversary can split them by key and attack each key on its own."""
        scrambler = scrambler_for(self.pipeline, self.with_defence(defence))
        keys = torch.tensor(scrambler.rotation_of(self.material.positions))
        features = pixel_features(scrambled, self.settings.pixel_size)
        separation = cluster_agreement(features, keys, len(keys.unique()), seed=self.settings.seed)
        log.info(
            "rotation every %d: k-means sorts submissions by key, NMI %.3f", defence.rotate_every, separation["nmi"]
        )
        return separation["nmi"]

    @cached_property
    def copies(self) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Rows resubmitted in the linkability attack, and the embeddings of their originals and changed copies
        (computed once, for the configured scrambler and every defence)."""
        rows = subsample(self.settings.linkability_images, len(self.material), self.settings.seed).tolist()
        pipeline = self.pipeline
        images = torch.stack([pipeline.source.load(self.material.positions[i], pipeline.image_size) for i in rows])
        (encoder,) = pipeline.build_encoders()
        with torch.inference_mode():
            changed = changed_embeddings(images, lambda x: torch.cat([encoder(chunk) for chunk in x.split(64)]))
        return rows, {"original": self.material.embeddings[rows], **changed}

    def linkability(self, reference: bool, defence: Defences | None) -> Curve:
        (rows, embeddings), m = self.copies, self.material
        settings = self.pipeline.scrambler if defence is None else self.with_defence(defence)
        positions = [m.positions[i] for i in rows]

        def under(key: Key | None) -> Callable[[torch.Tensor, list[str]], torch.Tensor]:
            return lambda embeddings, ids: scramble(self.pipeline, embeddings, ids, positions, settings, key)

        other = (
            under(Key(hashlib.sha256(f"owsd/another-key/{self.settings.seed}".encode()).digest()))
            if reference
            else None
        )
        ids = [m.image_ids[i] for i in rows]
        return linkability_curve(embeddings, ids, under(None), other, self.settings.pixel_size, reference)
