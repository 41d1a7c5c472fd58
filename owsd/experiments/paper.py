"""The paper's published numbers (Tables 1–4, §4.2), as (mean, std) fractions, for the report's side columns.

Keys are `table/row`, and `table4/<dataset>/<encoders>` for the ensembles. Metric names follow the runner's
records: `top1`/`top5` against the true labels, `cloud_class_top1`/`cloud_class_top5` against the cloud's answer
on the plaintext image, and `cloud_plaintext_*` for the cloud's own accuracy on unscrambled images.
"""

from __future__ import annotations

Published = dict[str, tuple[float, float]]


def _table1_row(*values: float) -> Published:
    names = ("top1", "top5", "cloud_class_top1", "cloud_class_top5", "cloud_plaintext_top1", "cloud_plaintext_top5")
    return {name: (values[2 * i], values[2 * i + 1]) for i, name in enumerate(names)}


_TABLE1 = {
    "ImageNet": _table1_row(0.679, 0.007, 0.876, 0.006, 0.693, 0.008, 0.888, 0.004, 0.777, 0.005, 0.938, 0.004),
    "CIFAR-100": _table1_row(0.643, 0.013, 0.885, 0.015, 0.581, 0.004, 0.816, 0.015, 0.695, 0.011, 0.901, 0.004),
    "CIFAR-10": _table1_row(0.865, 0.017, 0.992, 0.004, 0.848, 0.014, 0.988, 0.004, 0.933, 0.009, 0.998, 0.002),
}

# Table 4: (top1, top5, cloud_class_top1, cloud_class_top5) as (mean, std), for 1, 2 and 3 encoders.
_TABLE4 = {
    "ImageNet": [
        ((0.679, 0.007), (0.876, 0.006), (0.693, 0.008), (0.888, 0.004)),
        ((0.686, 0.002), (0.889, 0.004), (0.699, 0.004), (0.901, 0.003)),
        ((0.695, 0.006), (0.891, 0.006), (0.714, 0.009), (0.907, 0.005)),
    ],
    "CIFAR-100": [
        ((0.643, 0.013), (0.885, 0.015), (0.581, 0.004), (0.816, 0.015)),
        ((0.672, 0.010), (0.898, 0.004), (0.610, 0.010), (0.845, 0.011)),
        ((0.684, 0.007), (0.904, 0.009), (0.624, 0.009), (0.857, 0.015)),
    ],
    "CIFAR-10": [
        ((0.865, 0.017), (0.992, 0.004), (0.848, 0.014), (0.988, 0.004)),  # the paper prints 0.0014 here
        ((0.881, 0.014), (0.993, 0.004), (0.862, 0.015), (0.992, 0.001)),
        ((0.889, 0.009), (0.994, 0.001), (0.874, 0.008), (0.991, 0.002)),
    ],
}

PAPER: dict[str, Published] = {
    **{f"table1/{row}": values for row, values in _TABLE1.items()},
    "table2/1000": {"top1": (0.679, 0.007), "top5": (0.876, 0.006)},
    "table2/100": {"top1": (0.872, 0.009), "top5": (0.967, 0.006)},
    "table2/10": {"top1": (0.955, 0.019), "top5": (0.999, 0.003)},
    "table3/ImageNet-not-CIFAR-100": {"top1": (0.960, 0.015), "top5": (0.999, 0.002)},
    **{
        f"table4/{row}/{count}": {
            **dict(zip(("top1", "top5", "cloud_class_top1", "cloud_class_top5"), columns)),
            **{k: v for k, v in _TABLE1[row].items() if k.startswith("cloud_plaintext")},
        }
        for row, ensembles in _TABLE4.items()
        for count, columns in enumerate(ensembles, 1)
    },
}

# Figure 2 is a plot; the text gives two of its points without saying whether they are top-1 or top-5.
FIGURE2_TEXT = "The paper (§4.2, use case 5) quotes 90.6% at 35 and 91.2% at 45 images per label (metric unstated)."


# What each published row was measured on, for a report that sets it beside a run on other data.
PAPER_DATA = {
    "table1/ImageNet": "ImageNet val → Xception cloud",
    "table1/CIFAR-100": "CIFAR-100 test → VGG16 cloud on its train split",
    "table1/CIFAR-10": "CIFAR-10 test → VGG16 cloud on its train split",
    "table2/1000": "ImageNet, all 1,000 labels",
    "table2/100": "ImageNet, 100 of 1,000 labels",
    "table2/10": "ImageNet, 10 of 1,000 labels",
    "table3/ImageNet-not-CIFAR-100": "ImageNet labels not in CIFAR-100 → CIFAR-100 cloud",
    "table4/ImageNet": "ImageNet",
    "table4/CIFAR-100": "CIFAR-100",
    "table4/CIFAR-10": "CIFAR-10",
}


def published(paper_row: str | None, encoders: int) -> Published:
    """The published numbers for a row (an ensemble's column in Table 4), or none."""
    if paper_row is None:
        return {}
    return PAPER.get(f"{paper_row}/{encoders}", PAPER.get(paper_row, {}))
