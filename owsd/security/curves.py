"""Attack curves for T1 and T2: clustering and label leakage over the adversary's resources.

Every curve is measured three times: on the scrambled data (what the cloud holds), on the unscrambled data
(the plaintext image, or the cloud's answer for it: the leak with no scrambling at all), and at chance (the
same attack with the link between data and labels broken by a permutation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from owsd.attacks.clustering import cluster_agreement, log_probabilities
from owsd.attacks.label_leakage import few_label_accuracy

log = logging.getLogger(__name__)

Value = float | None


@dataclass
class Curve:
    """One attack's metric over one resource; `defences` holds the scrambled curve under each defence.

    `budget` marks the curves the key budget is read from (a score, higher meaning more leaked, that is
    compared with its chance level by the margin);
    `higher_leaks` is False for an error metric (MSE), where lower means more leaked.
    Over several assessment keys the series are means, `std` holds their standard deviations (per series, and
    per defence under "defences") and `keys` how many keys were measured.
    """

    attack: str
    threat_model: str
    resource: str
    resource_values: list[int | str]
    metric: str
    scrambled: list[Value]
    unscrambled: list[Value]
    chance: list[Value]
    defences: dict[str, list[Value]] = field(default_factory=dict)
    budget: bool = True
    higher_leaks: bool = True
    std: dict[str, Any] = field(default_factory=dict)
    keys: int = 1

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Curve:
        """The inverse of `as_dict`."""
        return cls(**{name: value for name, value in entry.items() if name != "reaches_90pct_of_unscrambled_at"})

    @property
    def key(self) -> str:
        return f"{self.attack}/{self.metric}"

    @property
    def reaches_unscrambled(self) -> int | str | None:
        """The first resource value at which the attack recovers 90% of what it gains over chance without
        scrambling: (scrambled − chance) ≥ 0.9 (unscrambled − chance), with signs flipped where lower leaks
        more. None where it never does, or where the unscrambled data leaks nothing over chance."""
        sign = 1 if self.higher_leaks else -1
        for value, scrambled, plain, chance in zip(self.resource_values, self.scrambled, self.unscrambled, self.chance):
            if None in (scrambled, plain, chance) or sign * (plain - chance) <= 0:
                continue
            if sign * (scrambled - chance) >= 0.9 * sign * (plain - chance):
                return value
        return None

    def as_dict(self) -> dict:
        return {**asdict(self), "reaches_90pct_of_unscrambled_at": self.reaches_unscrambled}


@dataclass
class Views:
    """The same images as each attack can see them: features of the scrambled and unscrambled data."""

    labels: torch.Tensor
    scrambled_pixels: torch.Tensor
    original_pixels: torch.Tensor
    cloud: torch.Tensor | None = None
    plaintext_cloud: torch.Tensor | None = None

    def pairs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Feature kind → (scrambled view, unscrambled view)."""
        kinds: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {
            "pixels": (self.scrambled_pixels, self.original_pixels)
        }
        if self.cloud is not None:
            plain = None if self.plaintext_cloud is None else log_probabilities(self.plaintext_cloud)
            kinds["cloud vectors"] = (log_probabilities(self.cloud), plain)
        return kinds


def permuted(labels: torch.Tensor, seed: int) -> torch.Tensor:
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def subsample(count: int, total: int, seed: int) -> torch.Tensor:
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


Attack = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


def three_ways(attack: Attack, scrambled: torch.Tensor, plain: torch.Tensor | None, labels: torch.Tensor,
               seed: int, reference: bool) -> dict[str, dict[str, float] | None]:  # fmt: skip
    """The attack on the scrambled view, and (with `reference`) on the unscrambled view and at chance."""
    return {
        "scrambled": attack(scrambled, labels),
        "unscrambled": attack(plain, labels) if reference and plain is not None else None,
        "chance": attack(scrambled, permuted(labels, seed)) if reference else None,
    }


def curves_from(
    runs: list[dict[str, dict[str, float] | None]], make: Callable[[str], Curve], metrics: list[str]
) -> list[Curve]:
    """Curves (one per metric) from one `three_ways` result per resource value."""
    curves = []
    for metric in metrics:
        curve = make(metric)
        for run in runs:
            for view in ("scrambled", "unscrambled", "chance"):
                getattr(curve, view).append(None if run[view] is None else run[view][metric])
        curves.append(curve)
    return curves


def clustering_curves(
    views: Views, submissions: list[int], classes: int, seed: int, reference: bool = True
) -> list[Curve]:
    """T1: k-means on everything seen under the key, scored against the true labels (NMI, ARI)."""

    def attack(features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return cluster_agreement(features, labels, classes, seed=seed)

    curves = []
    for kind, (scrambled, plain) in views.pairs().items():
        runs = []
        for count in submissions:
            rows = subsample(count, len(views.labels), seed)
            runs.append(
                three_ways(
                    attack, scrambled[rows], None if plain is None else plain[rows], views.labels[rows], seed, reference
                )
            )
            log.info("clustering (%s), %d submissions: NMI %.3f", kind, count, runs[-1]["scrambled"]["nmi"])

        def make(metric: str, kind: str = kind) -> Curve:
            return Curve(f"clustering ({kind})", "T1", "submissions seen", list(submissions), metric, [], [], [],
                         budget=metric == "nmi")  # fmt: skip

        curves += curves_from(runs, make, ["nmi", "ari"])
    return curves


def label_leakage_curves(views: Views, labels_per_class: list[int], seed: int, reference: bool = True) -> list[Curve]:
    """T2: a classifier trained on k labelled scrambled images per class labels all the others."""
    curves = []
    for kind, (scrambled, plain) in views.pairs().items():
        runs = []
        for k in labels_per_class:

            def attack(features: torch.Tensor, labels: torch.Tensor, k: int = k) -> dict[str, float]:
                return few_label_accuracy(features, labels, k, seed=seed)

            runs.append(three_ways(attack, scrambled, plain, views.labels, seed, reference))
            log.info(
                "label leakage (%s), %d labels per class: accuracy %.3f", kind, k, runs[-1]["scrambled"]["accuracy"]
            )

        def make(metric: str, kind: str = kind) -> Curve:
            return Curve(
                f"label leakage ({kind})", "T2", "labels known per class", list(labels_per_class), metric, [], [], []
            )

        curves += curves_from(runs, make, ["accuracy"])
    return curves
