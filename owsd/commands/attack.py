"""`owsd attack --config CFG --out DIR`: the attack suite, the defences' costs and the key budget.

Writes `DIR/attacks.json` (one entry per attack and metric: threat model, resource values, scrambled /
unscrambled / chance values, and each defence's scrambled values), a PNG per entry, `DIR/defences.json`
and `DIR/key_budget.json`, then prints the curves' last points and the budget.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from owsd.analysis.plots import save_curve_plot
from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse, scratch_trainer_settings, trainer_factory
from owsd.security.settings import AttackSettings
from owsd.security.suite import SuiteResult, run_suite

log = logging.getLogger("owsd")


def main(argv: list[str]) -> None:
    parser = experiment_parser("owsd attack", __doc__.splitlines()[0])
    config, objects, config_yaml = parse(parser, argv)
    settings: AttackSettings = objects.attack
    with OutputFolder(config.out, config_yaml) as folder, scratch_trainer_settings(objects) as trainer:
        result = run_suite(objects.data, objects.model, trainer_factory(trainer), settings, config.iin_threads)
        write_results(folder, result, config_yaml)
    print(summary(result))
    log.info("wrote %s", config.out)


def write_results(folder: Path, result: SuiteResult, config_yaml: str) -> None:
    curves = [curve.as_dict() for curve in result.curves]
    (folder / "attacks.json").write_text(json.dumps({"attacks": curves}, indent=2))
    (folder / "defences.json").write_text(json.dumps({"defences": result.defence_costs}, indent=2))
    (folder / "key_budget.json").write_text(json.dumps(result.budget, indent=2))
    (folder / "config.yaml").write_text(config_yaml)
    for curve in curves:
        save_curve_plot(curve, folder / f"{slug(curve['attack'])}-{slug(curve['metric'])}.png")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def summary(result: SuiteResult) -> str:
    """The last point of every curve, the defences' costs and the budget, as plain text tables."""
    header = f"{'attack (metric) at the largest resource':56}{'scrambled':>10}{'plain':>8}{'chance':>8}"
    lines = [header + f"{'90% of plain at':>17}"]
    for c in result.curves:
        label = f"{c.threat_model} {c.attack} ({c.metric}) @ {c.resource_values[-1]}"
        values = "".join(_number(v[-1], w) for v, w in ((c.scrambled, 10), (c.unscrambled, 8), (c.chance, 8)))
        reached = "—" if c.reaches_unscrambled is None else c.reaches_unscrambled
        lines.append(f"{label:56}{values}{reached:>17}")
    lines += ["", f"{'defence (IIN test top-1)':36}{'OWSD IIN':>10}{'cloud only':>12}{'embedding only':>16}"]
    for row in result.defence_costs:
        cells = f"{row['iin_top1']:10.3f}{row['cloud_iin_top1']:12.3f}{row['embedding_iin_top1']:16.3f}"
        lines.append(f"{row['defence']:36}{cells}")
    lines += ["", f"key budget (margin {result.budget['margin']} above chance), configured scrambler:"]
    for threat, verdict in result.budget["configured"].items():
        bound = "at least " if verdict["lower_bound_only"] else ""
        limit = f"; broken by {verdict['limited_by']}" if verdict["limited_by"] else ""
        lines.append(f"  {threat}: {bound}{verdict['budget']} {verdict['resource']}{limit}")
    return "\n".join(lines)


def _number(value: float | None, width: int) -> str:
    return f"{value:{width}.3f}" if value is not None else f"{'—':>{width}}"
