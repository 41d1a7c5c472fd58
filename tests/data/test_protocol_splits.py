"""The paper's protocols as splits: sizes, class ratios, label draws per seed, fixed pools, training sizes."""

from collections import Counter
from dataclasses import replace

import pytest

from owsd.data.selection import LabelSubset, SplitSettings, split_items
from owsd.errors import DataError

CLASSES = [f"c{i}" for i in range(100)]
ITEM_LABELS = [i % 100 for i in range(100 * 50)]  # 50 images per label, like ImageNet's validation set
UNBALANCED = [0] * 300 + [1] * 100 + [2] * 600  # CIFAR-like test split with uneven classes


def per_label(positions: list[int], labels: list[int]) -> Counter:
    return Counter(labels[p] for p in positions)


def test_use_case_1_uses_every_image_and_keeps_class_ratios_in_a_90_10_split():
    settings = SplitSettings(test_fraction=0.1, val_fraction=0.0)
    split = split_items(UNBALANCED, settings, ["a", "b", "c"])
    assert sorted(split.all) == list(range(len(UNBALANCED)))
    assert per_label(split.test, UNBALANCED) == {0: 30, 1: 10, 2: 60}
    assert per_label(split.train, UNBALANCED) == {0: 270, 1: 90, 2: 540}


def test_use_case_2_draws_labels_per_seed_reproducibly_with_50_images_each_split_70_30():
    def split(seed: int):
        settings = SplitSettings(LabelSubset(count=10, seed=seed), images_per_label=50, test_fraction=0.3,
                                 val_fraction=0.0, seed=seed)  # fmt: skip
        return split_items(ITEM_LABELS, settings, CLASSES)

    first = split(0)
    assert len(first.labels) == 10 and len(first.train) == 350 and len(first.test) == 150
    assert set(per_label(first.test, ITEM_LABELS).values()) == {15}
    assert split(0) == first
    assert len({tuple(split(seed).labels) for seed in range(5)}) == 5  # a new label draw per seed


def test_a_fixed_draw_seed_keeps_each_labels_pool_whatever_the_split_seed_and_the_other_labels():
    base = SplitSettings(images_per_label=20, draw_seed=0)
    pools = {
        seed: {p for p in split_items(ITEM_LABELS, replace(base, seed=seed), CLASSES).all if ITEM_LABELS[p] == 7}
        for seed in range(3)
    }
    assert len(pools[0]) == 20 and pools[0] == pools[1] == pools[2]
    subset = replace(base, labels=LabelSubset(names=["c3", "c7"]))
    assert {p for p in split_items(ITEM_LABELS, subset, CLASSES).all if ITEM_LABELS[p] == 7} == pools[0]
    splits = [split_items(ITEM_LABELS, replace(base, seed=seed), CLASSES) for seed in range(2)]
    assert splits[0].test != splits[1].test  # the same pool, split anew


def test_training_images_per_label_shrink_the_training_set_and_leave_test_and_validation_alone():
    base = SplitSettings(images_per_label=50, test_fraction=0.1, val_fraction=0.1)
    full = split_items(ITEM_LABELS, base, CLASSES)
    for size in (1, 5, 41):
        smaller = split_items(ITEM_LABELS, replace(base, train_per_label=size), CLASSES)
        assert smaller.test == full.test and smaller.val == full.val
        assert set(per_label(smaller.train, ITEM_LABELS).values()) == {size}
        assert set(smaller.train) <= set(full.train)
    with pytest.raises(DataError, match=r"train_per_label=42 but label 'c0' \(0\) has 41 training images"):
        split_items(ITEM_LABELS, replace(base, train_per_label=42), CLASSES)
