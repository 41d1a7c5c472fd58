"""PNG figures: original/scrambled pairs (paper §5.1), the cloud's answers in 2-D (§5.2), attack curves.

Figures are built as bare `matplotlib.figure.Figure`s rendered by Agg, never through pyplot: no backend is
switched and no figure is registered globally, so this is safe in a headless run and next to other plotting
code. Each PNG is written to a temporary file beside its target and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from sklearn.decomposition import PCA
from torchvision.utils import make_grid

from owsd.attacks.common import as_numpy
from owsd.files import atomic_write

THREAT_MODELS = ("T1", "T2", "T3")
_DEFENCE_COLOURS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _save_figure(figure: Figure, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temp: figure.savefig(temp, format="png", dpi=120, bbox_inches="tight"))


def save_image_grid(originals: torch.Tensor, scrambled: torch.Tensor, path: Path, columns: int = 8) -> None:
    """Each original (resized to the scrambled size) touching its scrambled image; `columns` pairs per row."""
    if originals.dtype != torch.uint8 or scrambled.dtype != torch.uint8:
        raise ValueError("originals and scrambled images must be uint8")
    if originals.ndim != 4 or originals.shape[1] != 3 or scrambled.ndim != 4 or scrambled.shape[1] != 3:
        raise ValueError("expected N×3×H×W images")
    if len(originals) != len(scrambled) or len(originals) == 0:
        raise ValueError(f"need as many originals as scrambled images, got {len(originals)} and {len(scrambled)}")
    size = scrambled.shape[-1]
    if scrambled.shape[-2] != size:
        raise ValueError("scrambled images must be square")
    resized = F.interpolate(originals.float(), size=(size, size), mode="bilinear", antialias=True)
    resized = resized.round().clamp(0, 255).to(torch.uint8)
    pairs = torch.cat([resized, scrambled], dim=-1)  # N×3×S×2S, no gap inside a pair
    grid = make_grid(pairs, nrow=columns, padding=max(2, size // 16), pad_value=255)
    image = Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temp: image.save(temp, format="PNG"))


def save_pca_plot(
    plain: torch.Tensor, scrambled: torch.Tensor, labels: torch.Tensor, label_names: tuple[str, str], path: Path
) -> None:
    """Cloud vectors of two labels' images, plain and scrambled, in one shared 2-D PCA.

    `labels` holds two distinct values; the smaller one is named `label_names[0]`.
    """
    plain_np, scrambled_np, labels_np = as_numpy(plain), as_numpy(scrambled), as_numpy(labels)
    if plain_np.shape != scrambled_np.shape or plain_np.ndim != 2 or len(labels_np) != len(plain_np):
        raise ValueError("expected N×C plain and scrambled vectors and N labels")
    values = np.unique(labels_np)
    if len(values) != 2:
        raise ValueError(f"expected images of exactly two labels, got {len(values)}")
    pca = PCA(2, random_state=0).fit(np.concatenate([plain_np, scrambled_np]).astype(np.float64))
    plain_2d, scrambled_2d = pca.transform(plain_np), pca.transform(scrambled_np)

    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    colours = ("tab:blue", "tab:orange")
    for kind, points, marker in (("plain", plain_2d, "o"), ("scrambled", scrambled_2d, "x")):
        for value, name, colour in zip(values, label_names, colours):
            mask = labels_np == value
            axes.scatter(*points[mask].T, c=colour, marker=marker, alpha=0.7, label=f"{kind}: {name}")
    ratios = pca.explained_variance_ratio_
    axes.set_xlabel(f"PC 1 ({ratios[0]:.0%} of variance)")
    axes.set_ylabel(f"PC 2 ({ratios[1]:.0%} of variance)")
    axes.set_title("Cloud output vectors, PCA")
    axes.legend()
    _save_figure(figure, path)


def _plot_series(
    axes: Axes, x: list[float], y: list[float | None], label: str, std: list[float | None] | None = None, **style
) -> None:
    """A line through the measured points, with a ± std band where a std is given (over keys)."""
    points = [(xi, yi, None if std is None else std[i]) for i, (xi, yi) in enumerate(zip(x, y)) if yi is not None]
    if not points:
        return
    (line,) = axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label, **style)
    band = [(xi, yi - si, yi + si) for xi, yi, si in points if si]
    if band:
        axes.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                          color=line.get_color(), alpha=0.2)  # fmt: skip


def save_curve_plot(curve: dict, path: Path) -> None:
    """An attack's metric against the adversary's resource: on scrambled, unscrambled, chance (+ defences).

    A None value is a point that was not measured and is left out; over several keys (`curve["std"]`) each
    series is drawn as its mean with a ± std band.
    """
    resources = curve["resource_values"]
    categorical = any(isinstance(v, str) for v in resources)  # e.g. linkability's kinds of change
    x = list(map(float, range(len(resources)))) if categorical else [float(v) for v in resources]
    if curve["threat_model"] not in THREAT_MODELS:
        raise ValueError(f"threat_model must be one of {THREAT_MODELS}, got {curve['threat_model']!r}")
    series = {name: curve[name] for name in ("scrambled", "unscrambled", "chance")}
    defences = curve.get("defences", {})
    for name, values in [*series.items(), *defences.items()]:
        if len(values) != len(x):
            raise ValueError(f"{name!r} has {len(values)} values for {len(x)} resource values")

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    std = curve.get("std", {})
    _plot_series(axes, x, series["scrambled"], "scrambled", std.get("scrambled"), color="tab:red")
    _plot_series(axes, x, series["unscrambled"], "unscrambled", std.get("unscrambled"), color="tab:blue")
    _plot_series(axes, x, series["chance"], "chance", std.get("chance"), color="tab:gray")
    for (name, values), colour in zip(defences.items(), cycle(_DEFENCE_COLOURS)):
        _plot_series(axes, x, values, name, std.get("defences", {}).get(name), color=colour, linestyle="--")
    if categorical:
        axes.set_xticks(x, [str(v) for v in resources])
    elif x and min(x) > 0 and max(x) > 10 * min(x):
        axes.set_xscale("log")
    axes.set_xlabel(curve["resource"])
    axes.set_ylabel(curve["metric"])
    keys = curve.get("keys", 1)
    over = f", mean ± std over {keys} keys" if keys > 1 else ""
    axes.set_title(f"{curve['attack']} ({curve['threat_model']}{over})")
    axes.grid(True, alpha=0.3)
    axes.legend()
    _save_figure(figure, path)


def save_learnability_plot(
    sizes: list[int], series: dict[str, dict[str, list[tuple[float, float]]]], title: str, path: Path
) -> None:
    """Accuracy against training images per label (the paper's Figure 2), one panel per metric.

    `series[method][metric]` holds a (mean, std) per size; the std is drawn as a shaded band.
    """
    metrics = sorted({metric for by_metric in series.values() for metric in by_metric})
    figure = Figure(figsize=(5 * len(metrics), 4))
    for axes, metric in zip(np.atleast_1d(figure.subplots(1, len(metrics))), metrics):
        for method, by_metric in series.items():
            if metric not in by_metric:
                continue
            mean, std = (np.array(values) for values in zip(*by_metric[metric]))
            axes.plot(sizes, mean, marker="o", label=method)
            axes.fill_between(sizes, mean - std, mean + std, alpha=0.2)
        axes.set_xscale("log")
        axes.set_xticks(sizes, [str(size) for size in sizes])
        axes.set_xlabel("training images per label")
        axes.set_ylabel(f"test {metric} accuracy")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(title)
    _save_figure(figure, path)


def save_gain_plot(
    sizes: list[int],
    panels: dict[str, dict[str, list[tuple[float, float] | None]]],
    threshold: float,
    title: str,
    path: Path,
) -> None:
    """What the cloud adds (points of top-1, mean and std band) against training images per label: one panel per
    comparison (e.g. over the best that sends nothing, over the same IIN without the cloud), each on its own y
    scale (one failed learner would flatten the rest), one line per encoder in the same colour in every panel, and
    the line a gain must clear."""
    encoders = list(dict.fromkeys(encoder for series in panels.values() for encoder in series))
    colours = {encoder: f"C{index % 10}" for index, encoder in enumerate(encoders)}
    figure = Figure(figsize=(6 * len(panels), 4))
    for axes, (panel, series) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels.items()):
        for encoder, values in series.items():
            means = [None if value is None else value[0] for value in values]
            stds = [None if value is None else value[1] for value in values]
            _plot_series(axes, sizes, means, encoder, stds, color=colours[encoder])
        axes.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"+{threshold:g} points")
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_xscale("log")
        axes.set_xticks(sizes, [str(size) for size in sizes])
        axes.set_xlabel("training images per label")
        axes.set_ylabel("cloud adds (top-1 points)")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best", fontsize="small")
        axes.set_title(panel, fontsize="medium")
    figure.suptitle(title)
    _save_figure(figure, path)
