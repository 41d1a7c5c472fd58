"""`owsd attack --config CFG --out DIR`: the attack suite, the defences' costs and the key budget.

Scrambles under `attack.keys.count` fresh keys (never the config's key file) and writes, as mean (std) over
them: `DIR/attacks.json` (one entry per attack and metric: threat model, resource values, scrambled /
unscrambled / chance values, each defence's scrambled values, and every key's own curves), a PNG per entry,
`DIR/defences.json`, `DIR/key_budget.json` and `DIR/summary.md`, which it also prints.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from owsd.analysis.plots import save_curve_plot
from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse, scratch_trainer_settings, trainer_factory
from owsd.datamodule import OWSDDataModule
from owsd.security.assessment_keys import discard
from owsd.security.over_keys import combine_suites
from owsd.security.settings import AttackSettings
from owsd.security.suite import SuiteResult, run_suite
from owsd.security.summary import markdown_summary

log = logging.getLogger("owsd")


def main(argv: list[str]) -> None:
    parser = experiment_parser("owsd attack", __doc__.splitlines()[0])
    config, objects, config_yaml = parse(parser, argv)
    settings: AttackSettings = objects.attack
    settings.keys.check(objects.data.pipeline, "attack")
    objects.data.split  # noqa: B018  a split the config cannot take (images the cloud saw) fails before any write
    with OutputFolder(config.out, config_yaml) as folder, scratch_trainer_settings(objects) as trainer:

        def attack(data: OWSDDataModule, _: int) -> dict:
            return run_suite(data, objects.model, trainer_factory(trainer), settings, config.iin_threads).as_dict()

        saved = settings.keys.measure(folder, objects.data, "attack", attack)
        result = combine_suites([SuiteResult.from_dict(key) for key in saved], settings.margin)
        write_results(folder, result, saved, config_yaml)
        discard(folder)
    print(markdown_summary(result), end="")
    log.info("wrote %s", config.out)


def write_results(folder: Path, result: SuiteResult, keys: list[dict], config_yaml: str) -> None:
    """The combined result, beside each key's own (as `SuiteResult.as_dict` saved it)."""
    curves = [curve.as_dict() for curve in result.curves]
    (folder / "attacks.json").write_text(
        json.dumps({"keys": len(keys), "attacks": curves, "per_key": [key["curves"] for key in keys]}, indent=2)
    )
    (folder / "defences.json").write_text(
        json.dumps({"defences": result.defence_costs, "per_key": [key["defence_costs"] for key in keys]}, indent=2)
    )
    (folder / "key_budget.json").write_text(
        json.dumps({**result.budget, "per_key": [key["budget"] for key in keys]}, indent=2)
    )
    (folder / "summary.md").write_text(markdown_summary(result))
    (folder / "config.yaml").write_text(config_yaml)
    for curve in curves:
        save_curve_plot(curve, folder / f"{slug(curve['attack'])}-{slug(curve['metric'])}.png")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
