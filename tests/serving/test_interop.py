"""Third-party clients and servers of the same protocol (the `interop` extra)."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from owsd.serving.server import create_app
from tests.serving.conftest import MODEL, in_process, live_server

# CI installs the `interop` extra, so there a missing client fails instead of skipping
httpclient = (
    importlib.import_module("tritonclient.http") if os.environ.get("CI") else pytest.importorskip("tritonclient.http")
)
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def triton(served):
    with live_server(create_app(served)) as url:
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        yield client
        client.close()


def test_tritonclient_reads_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready(MODEL)
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    assert triton.get_model_metadata(MODEL)["outputs"][0]["shape"] == [-1, 1000]


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_infers_what_the_in_process_cloud_does(triton, images, binary):
    pixels = images[:3]
    tensor = httpclient.InferInput("images", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = triton.infer(MODEL, [tensor], outputs=[output], request_id="r")
    np.testing.assert_allclose(result.as_numpy("probabilities"), in_process(pixels, 3), atol=1e-6)


def test_tritonclient_sees_the_v2_error(triton, images):
    tensor = httpclient.InferInput("images", [1, 3, 24, 24], "FP32")
    tensor.set_data_from_numpy(images[:1].astype(np.float32))
    with pytest.raises(InferenceServerException, match="must be UINT8"):
        triton.infer(MODEL, [tensor])
