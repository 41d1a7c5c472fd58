"""The attack suite's figures over several assessment keys: mean (std) of every measured value, and, per
threat model, the key budget of the key that leaked soonest (a budget must hold for the next key too)."""

from __future__ import annotations

from typing import Any

from owsd.security.budget import linkability_verdict
from owsd.security.curves import Curve, Value
from owsd.security.suite import SuiteResult
from owsd.stats import Stat

SERIES = ("scrambled", "unscrambled", "chance")


def mean_and_std(values: list[Value]) -> tuple[Value, Value]:
    """A point measured under every key → (mean, std); one missing under any key stays unmeasured."""
    if any(value is None for value in values):
        return None, None
    stat = Stat.of([float(value) for value in values])  # type: ignore[arg-type]
    return stat.mean, stat.std


def combine_series(series: list[list[Value]]) -> tuple[list[Value], list[Value]]:
    points = [mean_and_std(list(point)) for point in zip(*series)]
    return [mean for mean, _ in points], [std for _, std in points]


def combine_curves(curves: list[Curve]) -> Curve:
    """One attack's curve under each key → the mean curve, its std per series in `std`."""
    first = curves[0]
    means, spreads = {}, {}
    for name in SERIES:
        means[name], spreads[name] = combine_series([getattr(curve, name) for curve in curves])
    defences, defence_spreads = {}, {}
    for defence in first.defences:
        defences[defence], defence_spreads[defence] = combine_series([curve.defences[defence] for curve in curves])
    return Curve(
        first.attack, first.threat_model, first.resource, first.resource_values, first.metric,
        means["scrambled"], means["unscrambled"], means["chance"], defences, first.budget, first.higher_leaks,
        std={**spreads, "defences": defence_spreads}, keys=len(curves),
    )  # fmt: skip


def combine_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One defence's costs under each key → mean of each figure, with `<figure>_std` beside it."""
    combined: dict[str, Any] = {}
    for name, value in rows[0].items():
        if isinstance(value, float):
            combined[name], combined[f"{name}_std"] = mean_and_std([row[name] for row in rows])
        else:
            combined[name] = value
    return combined


def worst_budget(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per threat model, the verdict of the key with the smallest budget, and every key's budget."""
    worst = {}
    for threat in verdicts[0]:
        per_key = [verdict[threat] for verdict in verdicts]
        index = min(range(len(per_key)), key=lambda i: per_key[i]["budget"])
        worst[threat] = {**per_key[index], "key": index, "budget_per_key": [v["budget"] for v in per_key]}
    return worst


def combine_suites(results: list[SuiteResult], margin: float) -> SuiteResult:
    """The suite's result under each assessment key → one result over all of them."""
    curves = [combine_curves(list(per_key)) for per_key in zip(*(result.curves for result in results))]
    costs = [combine_rows(list(rows)) for rows in zip(*(result.defence_costs for result in results))]
    budget: dict[str, Any] = {
        "margin": margin,
        "keys": len(results),
        "configured": worst_budget([result.budget["configured"] for result in results]),
        "defences": {
            name: worst_budget([result.budget["defences"][name] for result in results])
            for name in results[0].budget["defences"]
        },
    }
    linkability = [curve for curve in curves if curve.attack == "linkability"]
    if linkability:
        budget["linkability"] = linkability_verdict(linkability[0], margin)
    return SuiteResult(curves, costs, budget)
