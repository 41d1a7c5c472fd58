"""`owsd analyze --config CFG --out DIR`: what the cloud is shown and what it answers (paper §5.1–5.2).

Scrambles under `analysis.keys.count` fresh keys (never the config's key file) and writes `DIR/analysis.json`
(label overlap of the cloud's top-1/top-5 for plain vs scrambled images, drop in confidence of the plain
image's labels, entropies, the share of the cloud's most frequent answer, the generator's zero ReLU outputs:
mean (std) over the keys, and each key's),
`DIR/pairs.png` (originals beside their scrambled images) and `DIR/pca.png` (cloud vectors of two labels,
plain vs scrambled), both under the first key; logs the mean figures to the configured logger, and prints them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from itertools import zip_longest
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer

from owsd.analysis.cloud_output import cloud_output_summary, relu_zero_fraction
from owsd.analysis.plots import save_image_grid, save_pca_plot
from owsd.analysis.settings import AnalysisSettings
from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse, scratch_trainer_settings, trainer_factory
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.pipeline import Pipeline
from owsd.security.assessment_keys import discard
from owsd.security.material import Material, gather, scrambler_for
from owsd.security.over_keys import combine_rows

log = logging.getLogger("owsd")


def main(argv: list[str]) -> None:
    parser = experiment_parser("owsd analyze", __doc__.splitlines()[0])
    config, objects, config_yaml = parse(parser, argv)
    data: OWSDDataModule = objects.data
    if not data.pipeline.plaintext_baseline:
        raise ConfigError("analyze compares answers for plain and scrambled images: set data.plaintext_baseline: true")
    settings: AnalysisSettings = objects.analysis
    pca = pca_labels(data, settings)
    size = data.pipeline.scrambler.size  # originals beside scrambled, at the same size
    settings.keys.check(data.pipeline, "analysis")
    with OutputFolder(config.out, config_yaml) as folder, scratch_trainer_settings(objects) as trainer:

        def analyse_under(keyed: OWSDDataModule, index: int) -> dict[str, Any]:
            material = gather(keyed, trainer_factory(trainer)(), size)
            if index == 0:
                write_pictures(folder, material, settings, pca)
            return analyse(keyed.pipeline, material, settings)

        per_key = settings.keys.measure(folder, data, "analyze", analyse_under)
        figures = combine_rows(per_key)
        write_results(folder, settings, figures, per_key, config_yaml)
        log_to_logger(trainer_factory(trainer)(), figures)
        discard(folder)
    print(f"{'figure':32}{'mean':>10}{'std':>10}   over {len(per_key)} keys")
    for name, value in figures.items():
        if isinstance(value, float) and not name.endswith("_std"):
            print(f"{name:32}{value:10.4f}{figures[f'{name}_std']:10.4f}")
    log.info("wrote %s", config.out)


def analyse(pipeline: Pipeline, material: Material, settings: AnalysisSettings) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "images": len(material),
        **cloud_output_summary(material.plaintext_cloud, material.cloud),
    }
    generator = scrambler_for(pipeline).generator(0)
    figures["relu_zero_fraction"] = relu_zero_fraction(generator, material.embeddings[: settings.relu_images])
    figures["pixel_std"] = material.scrambled.float().std().item()
    return figures


def pca_labels(data: OWSDDataModule, settings: AnalysisSettings) -> dict[int, str]:
    """IIN class → name of the two labels of the PCA plot (checked before any work is done)."""
    names = data.class_names
    chosen = settings.pca_labels or names[:2]
    if len(chosen) != 2 or len(set(chosen)) != 2 or any(name not in names for name in chosen):
        raise ConfigError(f"analysis.pca_labels={chosen} must name two of the data's labels {names[:20]}")
    return {names.index(name): name for name in chosen}


def grid_rows(labels: torch.Tensor, count: int) -> list[int]:
    """One image of each label in turn, so the grid shows every label (sources are often sorted by label)."""
    by_label = [(labels == label).nonzero().flatten().tolist() for label in labels.unique().tolist()]
    return [row for group in zip_longest(*by_label) for row in group if row is not None][:count]


def write_results(
    folder: Path, settings: AnalysisSettings, figures: dict[str, Any], per_key: list[dict[str, Any]], config_yaml: str
) -> None:
    results = {"settings": asdict(settings), "keys": len(per_key), "figures": figures, "per_key": per_key}
    (folder / "analysis.json").write_text(json.dumps(results, indent=2))
    (folder / "config.yaml").write_text(config_yaml)


def write_pictures(folder: Path, material: Material, settings: AnalysisSettings, pca: dict[int, str]) -> None:
    shown = grid_rows(material.labels, settings.grid_images)
    save_image_grid(material.originals[shown], material.scrambled[shown], folder / "pairs.png")
    rows = [row for c in pca for row in (material.labels == c).nonzero().flatten()[: settings.pca_images].tolist()]
    names = tuple(name for _, name in sorted(pca.items()))  # the plot names the smaller class first
    save_pca_plot(
        material.plaintext_cloud[rows], material.cloud[rows], material.labels[rows], names, folder / "pca.png"
    )


def log_to_logger(trainer: Trainer, figures: dict[str, Any]) -> None:
    """The figures as metrics. Never the PNGs: `pairs.png` shows private originals, `pca.png` their answers,
    and a logger may be a remote service."""
    for logger in trainer.loggers:
        logger.log_metrics({f"analysis/{name}": float(value) for name, value in figures.items() if value is not None})
        logger.save()
