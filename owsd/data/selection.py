"""Which images an experiment uses: a label subset, images per label, and a stratified split.

Pure functions of the source's item list and seeds, so that every run of a sweep or of the paper's
five random splits picks its images reproducibly and reads them from one shared cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from owsd.errors import ConfigError, DataError


@dataclass(frozen=True)
class LabelSubset:
    """Either `count` labels drawn at random with `seed`, or an explicit list of label `names`.

    Neither set means all labels (the paper's use case 1); a count is use case 2.
    """

    count: int | None = None
    names: list[str] | None = None
    seed: int = 0

    def choose(self, classes: list[str]) -> list[int]:
        """Indices into `classes`, in ascending order."""
        if self.count is not None and self.names is not None:
            raise ConfigError("data.split.labels: give either `count` or `names`, not both")
        if self.names is not None:
            unknown = [name for name in self.names if name not in classes]
            if unknown:
                raise ConfigError(f"data.split.labels.names: {unknown} not among the dataset's labels {classes[:20]}")
            return sorted(classes.index(name) for name in self.names)
        if self.count is None:
            return list(range(len(classes)))
        if not 1 <= self.count <= len(classes):
            raise ConfigError(f"data.split.labels.count={self.count} but the dataset has {len(classes)} labels")
        generator = torch.Generator().manual_seed(self.seed)
        return sorted(torch.randperm(len(classes), generator=generator)[: self.count].tolist())


@dataclass(frozen=True)
class SplitSettings:
    """Which images an experiment uses and how they are split.

    Args:
        labels: which labels are confidential: all, `count` at random with `seed`, or a list of `names`.
        images_per_label: images drawn per label (all when unset).
        test_fraction: share of each label's images held out for test.
        val_fraction: share of the remaining training images used for early stopping.
        seed: seed of the image draw and split; vary it for the paper's five random splits.
    """

    labels: LabelSubset = LabelSubset()
    images_per_label: int | None = None
    test_fraction: float = 0.3
    val_fraction: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class Split:
    """Positions into the source's item list, and the chosen labels (IIN class i is `labels[i]`)."""

    labels: list[int]
    train: list[int]
    val: list[int]
    test: list[int]

    @property
    def all(self) -> list[int]:
        return sorted(self.train + self.val + self.test)


def split_items(item_labels: list[int], settings: SplitSettings, class_names: list[str]) -> Split:
    """Per chosen label: draw `images_per_label` images, hold out `test_fraction` for test, then carve
    `val_fraction` of the rest for early stopping. Stratified, so class ratios are kept."""
    labels = settings.labels.choose(class_names)
    test_fraction, val_fraction = settings.test_fraction, settings.val_fraction
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ConfigError(
            f"data.split.test_fraction={test_fraction} and data.split.val_fraction={val_fraction} must lie in (0, 1)"
        )
    generator = torch.Generator().manual_seed(settings.seed)
    by_label: dict[int, list[int]] = {label: [] for label in labels}
    for position, label in enumerate(item_labels):
        if label in by_label:
            by_label[label].append(position)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for label, positions in by_label.items():
        wanted = len(positions) if settings.images_per_label is None else settings.images_per_label
        if len(positions) < max(wanted, 2):
            name = f"{class_names[label]!r} ({label})"
            raise DataError(f"label {name} has {len(positions)} images; images_per_label asks for {wanted}")
        order = torch.randperm(len(positions), generator=generator)[:wanted].tolist()
        chosen = [positions[i] for i in order]
        n_test = max(1, round(wanted * test_fraction))
        n_val = round((wanted - n_test) * val_fraction)
        test += chosen[:n_test]
        val += chosen[n_test : n_test + n_val]
        train += chosen[n_test + n_val :]
    return Split(labels, sorted(train), sorted(val), sorted(test))
