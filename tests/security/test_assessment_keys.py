"""Assessment keys: fresh per assessment, owner-only, kept for a resume, and each key measured once."""

import stat
from pathlib import Path

import pytest

from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.sources import ImageFolderSource
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.security.assessment_keys import WORKSPACE, AssessmentKeys, discard
from owsd.serving.client import RemoteCloud
from tests.conftest import TINY_IMAGES


def data_module(tmp_path, cloud=None) -> OWSDDataModule:
    encoders = [ModelSpec("test_efficientnet", "random")]
    scrambler = ScramblerSettings(tmp_path / "user.key", create_key=True, key_budget=5)
    cloud = cloud or LocalCloud("test_resnet", "random")
    return OWSDDataModule(ImageFolderSource(TINY_IMAGES), encoders, cloud, scrambler, cache_dir=tmp_path / "cache")


def test_fresh_keys_are_new_each_time_private_and_reused_by_a_resume(tmp_path):
    data = data_module(tmp_path)
    first = AssessmentKeys(count=3).pipelines(tmp_path / "a", data.pipeline, "attack")
    fingerprints = [pipeline.key().fingerprint for pipeline in first]
    assert len(set(fingerprints)) == 3
    resumed = AssessmentKeys(count=3).pipelines(tmp_path / "a", data.pipeline, "attack")
    assert [pipeline.key().fingerprint for pipeline in resumed] == fingerprints
    other = AssessmentKeys(count=3).pipelines(tmp_path / "b", data.pipeline, "attack")
    assert not {pipeline.key().fingerprint for pipeline in other} & set(fingerprints)
    for pipeline in first:
        assert pipeline.scrambler.key_budget is None and pipeline.assessment == "attack"
        assert stat.S_IMODE(Path(pipeline.scrambler.key_file).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a" / WORKSPACE).stat().st_mode) == 0o700
    assert not (tmp_path / "user.key").exists(), "the user's key file is never read nor created"
    discard(tmp_path / "a")
    assert not (tmp_path / "a" / WORKSPACE).exists()


def test_a_resumed_assessment_measures_only_the_keys_it_had_not_finished(tmp_path):
    data, measured = data_module(tmp_path), []

    def measure(keyed: OWSDDataModule, index: int) -> dict:
        if index == 1 and not measured[1:]:
            measured.append(index)
            raise KeyboardInterrupt  # stopped while measuring the second key
        measured.append(index)
        return {"fingerprint": keyed.pipeline.key().fingerprint}

    keys = AssessmentKeys(count=3)
    with pytest.raises(KeyboardInterrupt):
        keys.measure(tmp_path / "out", data, "attack", measure)
    figures = keys.measure(tmp_path / "out", data, "attack", measure)
    assert measured == [0, 1, 1, 2]
    pipelines = keys.pipelines(tmp_path / "out", data.pipeline, "attack")
    assert [f["fingerprint"] for f in figures] == [pipeline.key().fingerprint for pipeline in pipelines]


def test_counts_below_one_and_public_keys_for_a_remote_cloud_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="keys.count=0"):
        AssessmentKeys(count=0)
    remote = data_module(tmp_path, RemoteCloud("http://127.0.0.1:9", "cifar")).pipeline
    with pytest.raises(ConfigError, match="remote_cloud true"):
        AssessmentKeys().check(remote, "attack")
    with pytest.raises(ConfigError, match="must never leave"):
        AssessmentKeys(seed=0, remote_cloud=True).check(remote, "attack")
    AssessmentKeys(remote_cloud=True).check(remote, "attack")
    AssessmentKeys(seed=0).check(data_module(tmp_path).pipeline, "attack")
