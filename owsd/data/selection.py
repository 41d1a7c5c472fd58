"""Which images an experiment uses: a label subset, images per label, and a stratified split.

Pure functions of the source's item list and seeds, so that every run of a sweep or of the paper's
five random splits picks its images reproducibly and reads them from one shared cache.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from owsd.errors import ConfigError, DataError
from owsd.ranges import AtLeastTwo, Count, Fraction, OpenFraction, check_ranges

OVERLAP_DIR = Path(__file__).parent / "overlap"  # shipped label-overlap files, e.g. imagenet_cifar100.csv


@dataclass(frozen=True)
class LabelSubset:
    """Either `count` labels drawn at random with `seed`, or an explicit list of label `names`.

    Neither set means all labels (the paper's use case 1); a count is use case 2. `exclude` removes labels
    before the draw (use case 3: labels the cloud never saw): a list of label names, or a CSV file whose first
    column names them (header row and `#` lines skipped), given as a path or as the name of a file shipped in
    `owsd/data/overlap/` (`imagenet_cifar100`).
    """

    count: Count | None = None
    names: list[str] | None = None
    seed: int = 0
    exclude: str | list[str] | None = None

    def __post_init__(self) -> None:
        check_ranges(self, "labels")

    def choose(self, classes: list[str]) -> list[int]:
        """Indices into `classes`, in ascending order."""
        if self.count is not None and self.names is not None:
            raise ConfigError("data.split.labels: give either `count` or `names`, not both")
        if self.names is not None:
            if self.exclude is not None:
                raise ConfigError("data.split.labels: `exclude` applies to a `count` draw or all labels, not `names`")
            unknown = [name for name in self.names if name not in classes]
            if unknown:
                raise ConfigError(f"data.split.labels.names: {unknown} not among the dataset's labels {classes[:20]}")
            return sorted(classes.index(name) for name in self.names)
        candidates = self._candidates(classes)
        if self.count is None:
            return candidates
        if not 1 <= self.count <= len(candidates):
            outside = " outside data.split.labels.exclude" if self.exclude is not None else ""
            have = f"{len(candidates)} labels{outside}"
            raise ConfigError(f"data.split.labels.count={self.count} but the dataset has {have}")
        generator = torch.Generator().manual_seed(self.seed)
        drawn = torch.randperm(len(candidates), generator=generator)[: self.count].tolist()
        return sorted(candidates[i] for i in drawn)

    def _candidates(self, classes: list[str]) -> list[int]:
        """The labels a draw may pick: all but the excluded ones, in ascending order."""
        if self.exclude is None:
            return list(range(len(classes)))
        where, names = excluded_labels(self.exclude)
        excluded = set(names)
        unknown = sorted(excluded - set(classes))
        if unknown:
            raise ConfigError(f"data.split.labels.exclude: {where} names labels the dataset lacks: {unknown[:20]}")
        return [index for index, name in enumerate(classes) if name not in excluded]


def excluded_labels(exclude: str | list[str]) -> tuple[str, list[str]]:
    """(where they come from, the label names) for `LabelSubset.exclude`."""
    if not isinstance(exclude, str):
        return "the list", list(exclude)
    path = Path(exclude)
    if not path.is_file() and (OVERLAP_DIR / f"{exclude}.csv").is_file():
        path = OVERLAP_DIR / f"{exclude}.csv"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in OVERLAP_DIR.glob("*.csv")))
        raise ConfigError(f"data.split.labels.exclude: file {exclude} does not exist (shipped: {shipped})")
    rows = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return str(path), [row.split(",", 1)[0].strip() for row in rows[1:]]


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


@dataclass(frozen=True)
class CloudSplit:
    """The images a cloud is trained on (`owsd train-cloud`), drawn from the same source as the private ones.

    Each label's images come in one fixed order (from `seed`), and a cloud takes the first `images_per_label`:
    a cloud of 10 per label saw a subset of one of 50, so one private pool outside the largest serves them all.

    Args:
        labels: the cloud's labels (all by default).
        images_per_label: images per label the cloud trains on (all when unset).
        seed: seed of each label's order.
        val_fraction: share of them kept for the cloud's early stopping and best checkpoint.
    """

    labels: LabelSubset = LabelSubset()
    images_per_label: AtLeastTwo | None = None  # one to train on, one to validate
    seed: int = 0
    val_fraction: Fraction = 0.1

    def __post_init__(self) -> None:
        check_ranges(self, "cloud_split")

    def draw(self, item_labels: list[int], class_names: list[str]) -> Split:
        """Positions of the cloud's images (`test` is empty); `DataError` naming a label that has too few."""
        labels = self.labels.choose(class_names)
        train: list[int] = []
        val: list[int] = []
        for label in labels:
            positions = [position for position, item in enumerate(item_labels) if item == label]
            wanted = len(positions) if self.images_per_label is None else self.images_per_label
            if len(positions) < wanted:
                name = f"{class_names[label]!r} ({label})"
                raise DataError(f"label {name} has {len(positions)} images; cloud_split.images_per_label asks {wanted}")
            order = torch.randperm(
                len(positions), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + label)
            )
            chosen = [positions[i] for i in order[:wanted].tolist()]
            n_val = round(wanted * self.val_fraction)
            val += chosen[:n_val]
            train += chosen[n_val:]
        if not train:
            raise ConfigError("cloud_split leaves the cloud no training image: lower cloud_split.val_fraction")
        return Split(labels, sorted(train), sorted(val), [])


@dataclass(frozen=True)
class SplitSettings:
    """Which images an experiment uses and how they are split.

    Args:
        labels: which labels are confidential: all, `count` at random with `seed`, or a list of `names`.
        images_per_label: images drawn per label (all when unset).
        test_fraction: share of each label's images held out for test.
        val_fraction: share of the remaining training images used for early stopping.
        seed: seed of the image draw and split; vary it for the paper's five random splits.
        draw_seed: seed of the image draw alone, when set: each label's images then stay the same whatever
            `seed` and the label draw are, so the repetitions of `owsd run` split one pool (one cache).
        train_per_label: keep at most this many training images per label (use case 5, learnability); the
            test and validation images are unchanged, so runs of different sizes are scored alike.
        reserved_for_cloud: the `cloud_split` of the config `owsd train-cloud` trained the cloud with: its
            images are left out of the private pool before any draw (the paper's use case 1: disjoint images).
    """

    labels: LabelSubset = LabelSubset()
    images_per_label: Count | None = None
    test_fraction: OpenFraction = 0.3
    val_fraction: Fraction = 0.1
    seed: int = 0
    draw_seed: int | None = None
    train_per_label: Count | None = None
    reserved_for_cloud: CloudSplit | None = None

    def __post_init__(self) -> None:
        check_ranges(self, "data.split")


def split_items(item_labels: list[int], settings: SplitSettings, class_names: list[str]) -> Split:
    """Per chosen label: draw `images_per_label` images, hold out `test_fraction` for test, then carve
    `val_fraction` of the rest for early stopping. Stratified, so class ratios are kept."""
    labels = settings.labels.choose(class_names)
    test_fraction, val_fraction = settings.test_fraction, settings.val_fraction
    generator = torch.Generator().manual_seed(settings.seed)
    by_label: dict[int, list[int]] = {label: [] for label in labels}
    reserved = (
        set()
        if settings.reserved_for_cloud is None
        else set(settings.reserved_for_cloud.draw(item_labels, class_names).all)
    )
    for position, label in enumerate(item_labels):
        if label in by_label and position not in reserved:
            by_label[label].append(position)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for label, positions in by_label.items():
        wanted = len(positions) if settings.images_per_label is None else settings.images_per_label
        if len(positions) < max(wanted, 2):
            name = f"{class_names[label]!r} ({label})"
            raise DataError(f"label {name} has {len(positions)} images; images_per_label asks for {wanted}")
        if settings.draw_seed is None:
            chosen = [positions[i] for i in torch.randperm(len(positions), generator=generator)[:wanted].tolist()]
        else:  # each label's pool depends on its own draw alone, whichever other labels are chosen
            pool = torch.Generator().manual_seed(settings.draw_seed * 1_000_003 + label)
            chosen = [positions[i] for i in torch.randperm(len(positions), generator=pool)[:wanted].tolist()]
            chosen = [chosen[i] for i in torch.randperm(wanted, generator=generator).tolist()]
        n_test = max(1, round(wanted * test_fraction))
        n_val = round((wanted - n_test) * val_fraction)
        kept = chosen[n_test + n_val :]
        if settings.train_per_label is not None:
            if settings.train_per_label > len(kept):
                name = f"{class_names[label]!r} ({label})"
                raise DataError(
                    f"data.split.train_per_label={settings.train_per_label} but label {name} has "
                    f"{len(kept)} training images after the test and validation split"
                )
            kept = kept[: settings.train_per_label]
        test += chosen[:n_test]
        val += chosen[n_test : n_test + n_val]
        train += kept
    return Split(labels, sorted(train), sorted(val), sorted(test))
