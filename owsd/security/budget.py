"""The key budget, read off the attack curves: per threat model, the largest resource at which no attack
beats chance by more than the margin.

A resource value is safe for a curve when the scrambled score, and the score at every smaller value, stays
within `margin` of chance. The budget is the largest value safe for every curve of the threat model:
0 when an attack already wins at the smallest value tried, and "at least" the largest value tried when
none wins there (a lower bound: larger resources were not measured).
"""

from __future__ import annotations

from typing import Any

from owsd.security.curves import Curve

RESOURCE = {"T1": "submissions seen", "T2": "labels known per class", "T3": "known pairs"}


def first_break(curve: Curve, margin: float, series: list[float | None] | None = None) -> int | None:
    """Index of the first resource value at which the attack beats chance by more than `margin`."""
    for index, (score, chance) in enumerate(zip(curve.scrambled if series is None else series, curve.chance)):
        if score is not None and chance is not None and score - chance > margin:
            return index
    return None


def key_budget(curves: list[Curve], margin: float, defence: str | None = None) -> dict[str, Any]:
    """The budget per threat model with the evidence it rests on (for one defence, or none).

    An attack that broke the key bounds the budget at the value before its break; an attack that never
    broke bounds it at the largest value it was tried at (beyond that nothing is known), which makes the
    budget a lower bound. Attacks not run under the defence are listed as `not_measured`.
    """
    verdicts: dict[str, Any] = {}
    for threat, resource in RESOURCE.items():
        evidence, not_measured = [], []
        for curve in curves:
            if curve.threat_model != threat or not curve.budget:
                continue
            series = curve.scrambled if defence is None else curve.defences.get(defence)
            if series is None:
                not_measured.append(f"{curve.attack} ({curve.metric})")
                continue
            index = first_break(curve, margin, series)
            evidence.append(
                {
                    "attack": curve.attack,
                    "metric": curve.metric,
                    "broken_at": None if index is None else curve.resource_values[index],
                    "score": None if index is None else series[index],
                    "chance": None if index is None else curve.chance[index],
                    "safe_up_to": curve.resource_values[index - 1] if index else 0 if index == 0 else None,
                    "largest_tried": curve.resource_values[-1],
                }
            )
        if not evidence:
            continue
        broken = [e for e in evidence if e["broken_at"] is not None]
        first = min(broken, key=lambda e: e["safe_up_to"]) if broken else None
        measured = min((e["largest_tried"] for e in evidence if e["broken_at"] is None), default=None)
        budget = min(v for v in (first and first["safe_up_to"], measured) if v is not None)
        verdicts[threat] = {
            "resource": resource,
            "budget": budget,
            "lower_bound_only": first is None or budget < first["safe_up_to"],
            "limited_by": None if first is None else f"{first['attack']} ({first['metric']})",
            "not_measured": not_measured,
            "evidence": evidence,
        }
    return verdicts


def linkability_verdict(curve: Curve, margin: float) -> dict[str, Any]:
    """Whether resubmissions can be linked: per change, the match rate against the false-match rate."""
    return {
        change: {"match_rate": score, "false_match_rate": chance, "linkable": score - chance > margin}
        for change, score, chance in zip(curve.resource_values, curve.scrambled, curve.chance)
    }
