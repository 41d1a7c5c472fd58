"""The regime search: is there a setting (encoder strength, training images per label, cloud strength) where the
cloud adds at least `GAIN_THRESHOLD` points of top-1 over the best IIN input or probe that sends nothing?

Each `owsd run` of the search is one (encoder, cloud) pair over training sizes; its `experiment.regime` names both.
The gain is paired per seed: OWSD's top-1 minus that of the local method with the best mean, on the same split;
and, to isolate the cloud's answers from the learner, minus that of the same IIN on the embedding alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from owsd.analysis.plots import save_gain_plot
from owsd.experiments.records import RunFolder, slug
from owsd.stats import Stat
from owsd.training import LOCAL_METHODS, METHODS, OWSD

GAIN_THRESHOLD = 3.0  # points of top-1
SAME_LEARNER = "embedding"  # OWSD's IIN without the cloud's answers
SHARED_BASELINES = (
    "What sends nothing does not depend on the cloud, so it is measured once per encoder: a run that measured only "
    "OWSD takes it from the same encoder's run with another cloud, per seed and on the same images (Pipelines names "
    "the lender)."
)
BEST_LOCAL_PANEL, SAME_LEARNER_PANEL = "over the best that sends nothing", "over the same IIN without the cloud"


def paired_gain(records: list[dict[str, Any]], candidates: tuple[str, ...] = LOCAL_METHODS) -> tuple[Stat, str] | None:
    """(gain in points over the seeds, the local method of `candidates` it is measured against: the one with the
    best mean), or None without both."""
    ok = [record["methods"] for record in records if record["status"] == "ok"]
    local = [m for m in candidates if ok and all(m in methods for methods in ok)]
    if not ok or not local or not all(OWSD in methods for methods in ok):
        return None
    best = max(local, key=lambda m: sum(methods[m]["top1"] for methods in ok))
    return Stat.of([100 * (methods[OWSD]["top1"] - methods[best]["top1"]) for methods in ok]), best


def gains(run: RunFolder, candidates: tuple[str, ...] = LOCAL_METHODS) -> dict[int, tuple[Stat, str]]:
    """Training images per label → the paired gain over the best of `candidates`, for the run's first recipe
    (a search run has one)."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    recipe = run.records[0]["recipe"]
    for record in (record for record in run.records if record["recipe"] == recipe):
        by_size.setdefault(record["train_per_label"], []).append(record)
    measured = {size: paired_gain(records, candidates) for size, records in by_size.items() if size is not None}
    return {size: gain for size, gain in sorted(measured.items()) if gain is not None}


def regime_section(runs: list[RunFolder], out: Path) -> list[str]:
    """The search's table, one figure per cloud strength (`regime-<cloud>.png`) and its verdict."""
    searched = [run for run in runs if run.run.get("regime")]
    if not searched:
        return []
    lines = [
        f"Gain = OWSD top-1 − the best local method's, per seed (mean (std) in points); the bar is +{GAIN_THRESHOLD:g}. "
        "The last column isolates the cloud's answers: the same IIN with and without them.",
        "",
    ]
    if any(run.run.get("baselines_from") for run in searched):
        lines += [SHARED_BASELINES, ""]
    lines += [
        f"| encoder | cloud | images per label | cloud adds (pts) | against | {SAME_LEARNER_PANEL} (pts) |",
        "|---|---|---|---|---|---|",
    ]
    best: tuple[float, str] | None = None
    reached, reached_by_iin, total = 0, 0, 0
    plotted: dict[str, dict[str, dict[str, dict[int, tuple[float, float]]]]] = {}  # cloud → panel → encoder → size
    for run in searched:
        encoder, cloud = run.run["regime"]["encoder"], run.run["regime"]["cloud"]
        same_learner = gains(run, (SAME_LEARNER,))
        for size, (gain, against) in gains(run).items():
            over_iin = None if size not in same_learner else same_learner[size][0]
            shown = "—" if over_iin is None else f"{over_iin.mean:+.1f} ({over_iin.std:.1f})"
            lines.append(
                f"| {encoder} | {cloud} | {size} | {gain.mean:+.1f} ({gain.std:.1f}) | {METHODS[against]} | {shown} |"
            )
            for panel, stat in ((BEST_LOCAL_PANEL, gain), (SAME_LEARNER_PANEL, over_iin)):
                if stat is not None:
                    by_panel = plotted.setdefault(cloud, {}).setdefault(panel, {})
                    by_panel.setdefault(encoder, {})[size] = (stat.mean, stat.std)
            total += 1
            reached += gain.mean >= GAIN_THRESHOLD
            reached_by_iin += over_iin is not None and over_iin.mean >= GAIN_THRESHOLD
            if best is None or gain.mean > best[0]:
                best = (gain.mean, f"{encoder}, {cloud}, {size} per label")
    lines.append("")
    for cloud, by_panel in plotted.items():
        sizes = sorted({size for encoders in by_panel.values() for by_size in encoders.values() for size in by_size})
        series = {
            panel: {encoder: [by_size.get(size) for size in sizes] for encoder, by_size in encoders.items()}
            for panel, encoders in by_panel.items()
        }
        name = f"regime-{slug(cloud)}.png"
        save_gain_plot(sizes, series, GAIN_THRESHOLD, f"what the cloud adds: {cloud}", out / name)
        lines.append(f"![what the cloud adds, {cloud}]({name})")
    if best is not None:
        lines += [
            "",
            f"{reached} of {total} settings reach +{GAIN_THRESHOLD:g} points; the largest gain is {best[0]:+.1f} "
            f"({best[1]}). Over the same IIN without the cloud, {reached_by_iin} of {total} reach it.",
        ]
    return lines
