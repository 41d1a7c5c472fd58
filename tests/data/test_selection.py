import pytest

from owsd.data.selection import LabelSubset, SplitSettings, split_items
from owsd.errors import ConfigError, DataError

CLASSES = [f"c{i}" for i in range(10)]
ITEM_LABELS = [i % 10 for i in range(200)]  # 20 images per label


def test_label_subset_by_count_is_seeded_and_by_names_exact():
    assert LabelSubset().choose(CLASSES) == list(range(10))
    first = LabelSubset(count=3, seed=1).choose(CLASSES)
    assert first == LabelSubset(count=3, seed=1).choose(CLASSES) and len(first) == 3
    assert any(LabelSubset(count=3, seed=s).choose(CLASSES) != first for s in range(2, 6))
    assert LabelSubset(names=["c7", "c2"]).choose(CLASSES) == [2, 7]


def test_label_subset_errors_name_the_setting():
    with pytest.raises(ConfigError, match="data.split.labels.count=11 but the dataset has 10 labels"):
        LabelSubset(count=11).choose(CLASSES)
    with pytest.raises(ConfigError, match=r"data.split.labels.names: \['dog'\]"):
        LabelSubset(names=["dog"]).choose(CLASSES)
    with pytest.raises(ConfigError, match="either `count` or `names`"):
        LabelSubset(count=2, names=["c1"]).choose(CLASSES)


def test_split_is_stratified_disjoint_and_reproducible():
    settings = SplitSettings(LabelSubset(names=["c1", "c4"]), images_per_label=10, test_fraction=0.3, val_fraction=0.25)
    split = split_items(ITEM_LABELS, settings, CLASSES)
    assert len(split.test) == 6 and len(split.val) == 4 and len(split.train) == 10
    assert not set(split.train) & set(split.test) and not set(split.val) & set(split.test)
    assert {ITEM_LABELS[p] for p in split.all} == {1, 4}
    assert sum(ITEM_LABELS[p] == 1 for p in split.test) == 3
    assert split == split_items(ITEM_LABELS, settings, CLASSES)
    assert split != split_items(ITEM_LABELS, SplitSettings(**{**vars(settings), "seed": 1}), CLASSES)


def test_too_few_images_per_label_is_an_error():
    with pytest.raises(DataError, match="label 'c3' \\(3\\) has 20 images; images_per_label asks for 21"):
        split_items(ITEM_LABELS, SplitSettings(LabelSubset(names=["c3"]), images_per_label=21), CLASSES)


def test_fractions_are_checked():
    with pytest.raises(ConfigError, match="data.split.test_fraction=1.0"):
        split_items(ITEM_LABELS, SplitSettings(test_fraction=1.0), CLASSES)
