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


def test_exclude_removes_labels_before_a_reproducible_draw(tmp_path):
    overlap = tmp_path / "overlap.csv"
    overlap.write_text("# labels the cloud saw\nlabel,why\nc0,same\nc3,kind\nc7,kind\n")
    for exclude in (str(overlap), ["c0", "c3", "c7"]):
        draws = [LabelSubset(count=4, seed=seed, exclude=exclude).choose(CLASSES) for seed in range(20)]
        assert all(len(draw) == 4 and not {0, 3, 7} & set(draw) for draw in draws)
        assert draws[5] == LabelSubset(count=4, seed=5, exclude=exclude).choose(CLASSES)
        assert len({tuple(draw) for draw in draws}) > 1
        assert LabelSubset(exclude=exclude).choose(CLASSES) == [1, 2, 4, 5, 6, 8, 9]
    assert LabelSubset(count=3, seed=1, exclude=[]).choose(CLASSES) == LabelSubset(count=3, seed=1).choose(CLASSES)
    with pytest.raises(ConfigError, match="count=8 but the dataset has 7 labels outside data.split.labels.exclude"):
        LabelSubset(count=8, exclude=str(overlap)).choose(CLASSES)


def test_exclude_errors_name_the_file_and_the_labels(tmp_path):
    overlap = tmp_path / "overlap.csv"
    overlap.write_text("label\nc1\ntiger\nn01440764\n")
    with pytest.raises(ConfigError, match=r"overlap.csv names labels the dataset lacks: \['n01440764', 'tiger'\]"):
        LabelSubset(count=2, exclude=str(overlap)).choose(CLASSES)
    with pytest.raises(ConfigError, match="file nothere.csv does not exist \\(shipped: imagenet_cifar100\\)"):
        LabelSubset(count=2, exclude="nothere.csv").choose(CLASSES)
    with pytest.raises(ConfigError, match="`exclude` applies to a `count` draw or all labels, not `names`"):
        LabelSubset(names=["c1"], exclude=["c2"]).choose(CLASSES)


def test_the_shipped_imagenet_cifar100_overlap_names_imagenet_classes():
    import csv

    from timm.data import ImageNetInfo

    from owsd.data.selection import OVERLAP_DIR, excluded_labels

    info = ImageNetInfo()
    where, wnids = excluded_labels("imagenet_cifar100")
    assert where == str(OVERLAP_DIR / "imagenet_cifar100.csv") and len(wnids) == len(set(wnids)) == 192
    lines = [line for line in open(where) if not line.startswith("#")]
    for row in csv.DictReader(lines):
        index = int(row["imagenet_index"])
        assert info.index_to_label_name(index) == row["wnid"]
        assert info.index_to_description(index) == row["imagenet_name"]
        assert row["match"] in ("same", "kind", "borderline") and row["reason"]
    drawn = LabelSubset(count=10, seed=0, exclude="imagenet_cifar100").choose(list(info.label_names()))
    assert len(drawn) == 10 and not {info.index_to_label_name(i) for i in drawn} & set(wnids)
    assert "n04033901" not in wnids and "n02129604" in wnids  # quill (a pen) is not CIFAR-100's; tiger is
