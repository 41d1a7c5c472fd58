"""`owsd fit --config imagenet_subset100.yaml` from any folder takes the shipped config and asks for the data root."""

import pytest

from owsd.commands.shipped_configs import SHIPPED_CONFIGS
from tests.conftest import TINY_IMAGES, refusal


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OWSD_IMAGENET", raising=False)
    return tmp_path


def test_the_missions_command_line_takes_the_shipped_config_and_asks_for_the_imagenet_root(empty_folder, capsys):
    """Before: `--config imagenet_subset100.yaml does not exist`, and the configs read /data/imagenet/val."""
    stderr = refusal(["fit", "--config", "imagenet_subset100.yaml"], capsys)
    lines = stderr.strip().splitlines()
    assert (
        lines[0]
        == f"--config imagenet_subset100.yaml: the shipped {SHIPPED_CONFIGS / 'uc2' / 'imagenet_subset100.yaml'}"
    )
    assert lines[-1].startswith("owsd: error: data.source.init_args.root $OWSD_IMAGENET/val: OWSD_IMAGENET is not set;")
    assert "FOLDER/val holding ILSVRC2012's validation images in one folder per synset" in lines[-1]
    assert list(empty_folder.iterdir()) == []  # no key, ledger or cache


def test_a_missing_imagenet_root_names_the_folder_and_the_layout(empty_folder, capsys, monkeypatch):
    monkeypatch.setenv("OWSD_IMAGENET", str(empty_folder / "imagenet"))
    stderr = refusal(["fit", "--config", "uc1/imagenet.yaml"], capsys)
    assert f"image folder {empty_folder / 'imagenet' / 'val'} does not exist: give data.source.init_args.root" in stderr
    assert list(empty_folder.iterdir()) == []


def test_a_name_two_shipped_configs_share_is_refused_naming_both(empty_folder, capsys):
    stderr = refusal(["fit", "--config=cifar10.yaml"], capsys)
    assert "names 2 shipped configs: uc1/cifar10.yaml, uc4/cifar10.yaml; give one" in stderr


def test_a_file_in_the_working_folder_comes_before_the_shipped_config(empty_folder, capsys):
    (empty_folder / "demo.yaml").write_text("model:\n  hidden_size: 0\n")
    assert "model.hidden_size=0 must be ≥ 1" in refusal(["fit", "--config", "demo.yaml"], capsys)


def test_every_shipped_config_is_found_by_a_name_it_alone_has(empty_folder, capsys):
    from owsd.commands.shipped_configs import with_shipped_configs

    configs = sorted(SHIPPED_CONFIGS.rglob("*.yaml"))
    assert len(configs) > 20
    for config in configs:
        name = config.relative_to(SHIPPED_CONFIGS).as_posix()
        assert with_shipped_configs(["--config", name]) == ["--config", str(config)]


def test_a_root_from_the_environment_is_read(monkeypatch):
    from owsd.data.sources import ImageFolderSource

    monkeypatch.setenv("OWSD_TINY", str(TINY_IMAGES.parent))
    assert ImageFolderSource(f"$OWSD_TINY/{TINY_IMAGES.name}").root == TINY_IMAGES
