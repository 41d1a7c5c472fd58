"""Markdown tables in the paper's layout (Tables 1–4, Figure 2) from the run folders of `owsd run`.

Every setting shows OWSD beside what a user gets without the cloud (the IIN on the embedding alone, the
linear probe, the encoder's own head where it applies), the paper's published number and the difference.
"""

from __future__ import annotations

from pathlib import Path

from owsd.analysis.plots import save_learnability_plot
from owsd.errors import ConfigError
from owsd.experiments.paper import FIGURE2_TEXT, PAPER_DATA, published
from owsd.experiments.records import Cell, RunFolder, slug
from owsd.experiments.regime import regime_section
from owsd.experiments.shared_baselines import MEASURED_IN, share_local_baselines
from owsd.iin_module import PLAINTEXT_CLOUD
from owsd.stats import Stat
from owsd.training import LOCAL_METHODS, METHODS, OWSD

TITLES = {
    "uc1": "Table 1 — use case 1: the cloud's own labels",
    "uc2": "Table 2 — use case 2: subsets of the cloud's labels",
    "uc3": "Table 3 — use case 3: labels the cloud never saw",
    "uc4": "Table 4 — use case 4: ensembles of encoders",
    "uc5": "Figure 2 — use case 5: training images per label",
}
PREAMBLE = (
    "Mean (std) over seeds. Δ pts = ours − the paper's, in percentage points, only where a run is on the paper's own "
    "data and label relation; elsewhere the paper's number stands in its own column, named by its dataset."
)


def percent(stat: Stat | None) -> str:
    return "—" if stat is None else f"{stat.mean:.1%} ({stat.std:.3f})"


def published_cell(value: tuple[float, float] | None) -> str:
    return "—" if value is None else f"{value[0]:.1%} ({value[1]:.3f})"


def difference(stat: Stat | None, value: tuple[float, float] | None) -> str:
    return "—" if stat is None or value is None else f"{(stat.mean - value[0]) * 100:+.1f}"


def seeds_cell(cell: Cell) -> str:
    ran = len(cell.seeds) - len(cell.failed)
    missing = f"; seed {', '.join(map(str, cell.failed))} failed" if cell.failed else ""
    return f"{ran}/{len(cell.seeds)}{missing}"


def setting_name(run: RunFolder, cell: Cell) -> str:
    parts = [run.row]
    if run.protocol == "uc4" or cell.setting.encoders > 1:
        parts.append(f"{cell.setting.encoders} encoder{'s' if cell.setting.encoders > 1 else ''}")
    if cell.setting.train_per_label is not None:
        parts.append(f"{cell.setting.train_per_label}/label")
    parts.append(f"{cell.setting.recipe} recipe")
    return ", ".join(parts)


def same_data(run: RunFolder) -> bool:
    """Whether the run is on the paper row's own data and label relation (only then is a difference shown)."""
    return bool(run.run.get("same_data_as_paper", False))


def paper_dataset(run: RunFolder) -> str:
    """What the paper's number was measured on (`table1/CIFAR-10` → `CIFAR-10 test → VGG16 cloud ...`)."""
    row = str(run.run.get("paper_row") or "")
    return PAPER_DATA.get(row, row)


def method_rows(run: RunFolder, cell: Cell, cloud_class: bool, columns: tuple[str, ...]) -> list[str]:
    """A table row per method of one setting; the paper's numbers on the OWSD and plaintext-cloud rows, with a
    difference only where the run is on the paper's own data, else in the other-data column without one."""
    paper = published(run.run.get("paper_row"), cell.setting.encoders)
    metrics = ["top1", "top5"] + (["cloud_class_top1", "cloud_class_top5"] if cloud_class else [])
    if not cell.stats:
        blanks = ["—"] * (len(columns) * len(metrics))
        return ["| " + " | ".join([setting_name(run, cell), "every run failed", *blanks, seeds_cell(cell)]) + " |"]
    rows = []
    for method, label in METHODS.items():
        stats = cell.stats.get(method)
        if stats is None:
            continue
        prefix = f"{PLAINTEXT_CLOUD}_" if method == PLAINTEXT_CLOUD else ""
        cells = [setting_name(run, cell), label]
        for metric in metrics:
            ours = stats.get(metric)
            theirs = paper.get(prefix + metric) if method in (OWSD, PLAINTEXT_CLOUD) else None
            same = theirs if same_data(run) else None
            other = theirs if not same_data(run) else None
            values = {
                "ours": percent(ours),
                "paper": published_cell(same),
                "Δ": difference(ours, same),
                "other": "—" if other is None else f"{published_cell(other)} on {paper_dataset(run)}",
            }
            cells += [values[column] for column in columns]
        rows.append("| " + " | ".join(cells + [seeds_cell(cell)]) + " |")
    return rows


COLUMN_NAMES = {"ours": "", "paper": " (paper)", "Δ": " Δ pts", "other": " (paper, other data)"}


def protocol_table(runs: list[RunFolder]) -> list[str]:
    cloud_class = any(
        "cloud_class_top1" in s.get(OWSD, {}) for run in runs for cell in run.cells() for s in [cell.stats]
    )
    columns = ("ours",)
    if any(same_data(run) for run in runs):
        columns += ("paper", "Δ")
    if any(not same_data(run) and run.run.get("paper_row") for run in runs):
        columns += ("other",)
    metrics = ["top-1", "top-5"] + (["cloud-class top-1", "cloud-class top-5"] if cloud_class else [])
    header = ["setting", "method"] + [f"{m}{COLUMN_NAMES[c]}" for m in metrics for c in columns]
    lines = ["| " + " | ".join(header + ["seeds"]) + " |", "|" + "---|" * (len(header) + 1)]
    for run in runs:
        for cell in run.cells():
            lines += method_rows(run, cell, cloud_class, columns)
    return lines


def cloud_adds(runs: list[RunFolder]) -> list[str]:
    """OWSD's top-1 minus that of the best local baseline, per setting: what the cloud adds."""
    lines = [
        "| table | setting | OWSD top-1 | best without the cloud | its top-1 | cloud adds (pts) |",
        "|---|---|---|---|---|---|",
    ]
    gains = []
    for run in runs:
        for cell in run.cells():
            ours = cell.stats.get(OWSD, {}).get("top1")
            local = {m: cell.stats[m]["top1"] for m in LOCAL_METHODS if m in cell.stats and "top1" in cell.stats[m]}
            if ours is None or not local:
                continue
            best = max(local, key=lambda m: local[m].mean)
            gain = (ours.mean - local[best].mean) * 100
            gains.append(gain)
            cells = [run.protocol, setting_name(run, cell), percent(ours), METHODS[best], percent(local[best])]
            lines.append("| " + " | ".join(cells + [f"{gain:+.1f}"]) + " |")
    if gains:
        lines += [
            "",
            f"Over {len(gains)} settings the cloud adds {min(gains):+.1f} to {max(gains):+.1f} points of top-1 "
            f"(mean {sum(gains) / len(gains):+.1f}) to the best that sends nothing.",
        ]
    return lines


def timing(runs: list[RunFolder]) -> list[str]:
    lines = [
        "| run folder | table | runs | failed | precompute s | mean s per IIN fit | total s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        fits = [  # the run's own: not the baselines it borrowed
            m["seconds"] for r in run.records for k, m in r.get("methods", {}).items()
            if "epochs" in m and k not in r.get(MEASURED_IN, {})
        ]  # fmt: skip
        failed = sum(r["status"] != "ok" for r in run.records)
        mean_fit = f"{sum(fits) / len(fits):.1f}" if fits else "—"
        cells = [run.folder.name, run.protocol, str(len(run.records)), str(failed)]
        cells += [f"{run.run['precompute_seconds']:.0f}", mean_fit, f"{run.run['total_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def check_comparable(runs: list[RunFolder]) -> None:
    """Two folders filling the same row of a table must be the same experiment, or the table mixes them."""
    seen: dict[tuple[str, str], RunFolder] = {}
    for run in runs:
        other = seen.setdefault((run.protocol, run.row), run)
        if other is not run:
            raise ConfigError(
                f"runs {other.folder} and {run.folder} both fill row {run.row!r} of {run.protocol}: "
                "give each experiment its own experiment.row, or report them separately"
            )


def learnability_figures(runs: list[RunFolder], out: Path) -> list[str]:
    """Figure 2 per use-case-5 run: OWSD and the local baselines against training images per label."""
    lines = []
    for run in runs:
        cells = [cell for cell in run.cells() if cell.setting.train_per_label is not None]
        for recipe in dict.fromkeys(cell.setting.recipe for cell in cells):
            chosen = sorted((c for c in cells if c.setting.recipe == recipe), key=lambda c: c.setting.train_per_label)
            sizes = [cell.setting.train_per_label for cell in chosen]
            series = {
                METHODS[method]: {
                    metric: [(c.stats[method][metric].mean, c.stats[method][metric].std) for c in chosen]
                    for metric in ("top1", "top5")
                }
                for method in (OWSD, *LOCAL_METHODS)
                if all(method in c.stats for c in chosen)
            }
            if not series:  # every run of this recipe failed: the table says so, there is nothing to draw
                continue
            name = f"figure2-{slug(run.row)}-{slug(recipe)}.png"
            save_learnability_plot(sizes, series, f"{run.row} ({recipe} recipe)", out / name)
            lines.append(f"![{run.row}, {recipe} recipe]({name})")
    return lines


def build_report(runs: list[RunFolder], out: Path) -> str:
    """The report's Markdown; Figure 2 PNGs are written into `out` beside it."""
    if not runs:
        raise ConfigError("owsd report: give at least one run folder")
    check_comparable(runs)
    runs = share_local_baselines(runs)
    lines = ["# OWSD experiments", "", PREAMBLE, ""]
    lines += ["## What the cloud adds", "", *cloud_adds(runs), ""]
    for protocol, title in TITLES.items():
        chosen = [run for run in runs if run.protocol == protocol]
        if not chosen:
            continue
        lines += [f"## {title}", "", *protocol_table(chosen), ""]
        if protocol == "uc5":
            lines += [FIGURE2_TEXT, "", *learnability_figures(chosen, out), ""]
    regime = regime_section(runs, out)
    if regime:
        lines += ["## Regime search: where could the cloud add 3 points?", "", *regime, ""]
    lines += ["## Runs and timings", "", *timing(runs), ""]
    lines += ["## Pipelines", ""]
    for run in runs:
        pipe = run.run["pipeline"]
        source = pipe["source"].get("kind", "?")
        lenders = "".join(
            f"; baselines that send nothing from `{lender}`" for lender in run.run.get("baselines_from", [])
        )
        lines.append(
            f"- `{run.folder.name}`: {source}; encoders {', '.join(pipe['encoders'])}; cloud `{pipe['cloud']}`{lenders}"
        )
    return "\n".join(lines) + "\n"


def run_summary(run: RunFolder) -> str:
    """The table of one run folder, for `owsd run` to print."""
    return "\n".join(protocol_table([run]))
