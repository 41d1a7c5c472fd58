"""The attack suite's results as Markdown: what `owsd attack` prints and writes to `summary.md`."""

from __future__ import annotations

from owsd.security.curves import Curve, Value
from owsd.security.suite import SuiteResult

# Published metrics that measure what an attack measures: name, and the (good below, bad above) privacy
# thresholds their authors set, where they set any.
PUBLISHED_METRICS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "embedding inversion/identification": (
        "the re-identification accuracy of the NeuraCrypt challenge (Yara et al. 2021: matching each encoded "
        "image to its original), under 5% good privacy, over 20% bad",
        (0.05, 0.20),
    ),
    "reconstruction/ssim": ("the OWSD paper's own autoencoder attack (§5.3), scored by SSIM", None),
}


def privacy_verdict(value: Value, thresholds: tuple[float, float] | None) -> str:
    if value is None or thresholds is None:
        return ""
    good, bad = thresholds
    return " (good privacy)" if value < good else " (bad privacy)" if value > bad else " (between good and bad)"


def cell(value: Value, std: Value = None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if std is None else f"{value:.3f} ({std:.3f})"


def last(curve: Curve, series: str) -> str:
    values = getattr(curve, series)
    spread = curve.std.get(series)
    return cell(values[-1], None if spread is None else spread[-1])


def markdown_summary(result: SuiteResult) -> str:
    """Every curve's last point, what each defence costs, the key budget and the published metrics."""
    keys = result.budget.get("keys", 1)
    lines = [
        f"# Attack suite over {keys} assessment key{'s' if keys > 1 else ''}",
        "",
        f"Each figure is the mean (sample std) over {keys} fresh keys; the user's own key was never used. "
        f"An attack breaks a key once it beats chance by more than {result.budget['margin']}.",
        "",
        "## Attacks at the largest resource tried",
        "",
        "| threat | attack (metric) | resource (largest tried) | scrambled | unscrambled | chance | 90% of the "
        "unscrambled gain at |",
        "|---|---|---|---|---|---|---|",
    ]
    for curve in result.curves:
        reached = "—" if curve.reaches_unscrambled is None else str(curve.reaches_unscrambled)
        lines.append(
            f"| {curve.threat_model} | {curve.attack} ({curve.metric}) | {curve.resource} ({curve.resource_values[-1]}) "
            f"| {last(curve, 'scrambled')} | {last(curve, 'unscrambled')} | {last(curve, 'chance')} | {reached} |"
        )
    lines += ["", "## What each defence costs the IIN (test top-1)", ""]
    lines += [
        "| defence | OWSD IIN | cloud-only IIN | embedding-only IIN | keys told apart (NMI) |",
        "|---|---|---|---|---|",
    ]
    for row in result.defence_costs:
        figures = [cell(row.get(name), row.get(f"{name}_std")) for name in
                   ("iin_top1", "cloud_iin_top1", "embedding_iin_top1", "key_separation_nmi")]  # fmt: skip
        lines.append(f"| {row['defence']} | {' | '.join(figures)} |")
    lines += ["", "## Key budget (the key that leaked soonest)", ""]
    lines += ["| scrambler | threat | resource | budget | per key | limited by |", "|---|---|---|---|---|---|"]
    budgets = {"configured": result.budget["configured"], **result.budget.get("defences", {})}
    for scrambler, verdicts in budgets.items():
        for threat, verdict in verdicts.items():
            bound = "≥ " if verdict["lower_bound_only"] else ""
            per_key = ", ".join(map(str, verdict.get("budget_per_key", [verdict["budget"]])))
            lines.append(
                f"| {scrambler} | {threat} | {verdict['resource']} | {bound}{verdict['budget']} | {per_key} "
                f"| {verdict['limited_by'] or '—'} |"
            )
    published = [(curve, PUBLISHED_METRICS[curve.key]) for curve in result.curves if curve.key in PUBLISHED_METRICS]
    if published:
        lines += ["", "## Published metrics these attacks match", ""]
        for curve, (metric, thresholds) in published:
            judged = [
                f"{cell(v)} at {r}{privacy_verdict(v, thresholds)}"
                for r, v in zip(curve.resource_values, curve.scrambled)
            ]
            lines.append(
                f"- {curve.attack} ({curve.metric}) is {metric}. Scrambled, by {curve.resource}: {'; '.join(judged)}."
            )
    return "\n".join(lines) + "\n"
