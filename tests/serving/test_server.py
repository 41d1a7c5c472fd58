from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from starlette.testclient import TestClient

from owsd.serving.protocol import HEADER_LENGTH, Tensor, decode, dumps, encode
from owsd.serving.server import create_app
from tests.serving.conftest import MODEL, in_process

INFER = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module")
def http(served) -> TestClient:
    return TestClient(create_app(served))


def test_health_and_metadata(http):
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").status_code == 200
    assert "binary_tensor_data" in http.get("/v2").json()["extensions"]
    assert http.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    metadata = http.get(f"/v2/models/{MODEL}").json()
    assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 3, -1, -1]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]}]


@pytest.mark.parametrize("binary", [False, True])
def test_infer_answers_what_the_in_process_cloud_does(http, images, binary):
    pixels = images[:4]
    fields = {"id": "7", "parameters": {"binary_data_output": binary}}
    body, headers = encode(fields, "inputs", [Tensor("images", pixels, binary)])
    response = http.post(INFER, content=body, headers=headers)
    assert response.status_code == 200
    assert (HEADER_LENGTH in response.headers) == binary
    message = decode(response.content, response.headers.get(HEADER_LENGTH), "outputs")
    assert message.fields["id"] == "7" and message.fields["model_name"] == MODEL
    (output,) = message.tensors
    assert output.name == "probabilities" and output.binary == binary and output.array.dtype == np.float32
    np.testing.assert_allclose(output.array, in_process(pixels, 4), atol=1e-6)


def test_binary_output_can_be_asked_per_output(http, images):
    body, headers = encode({"outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}, "inputs",
                           [Tensor("images", images[:1])])  # fmt: skip
    response = http.post(INFER, content=body, headers=headers)
    assert response.status_code == 200 and int(response.headers[HEADER_LENGTH]) < len(response.content)


def request(datatype="UINT8", shape=(1, 3, 2, 2), name="images", count=None, **extra) -> bytes:
    count = int(np.prod(shape)) if count is None else count
    return dumps({"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": [1] * count}], **extra})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (request(datatype="FP32"), "must be UINT8, got FP32"),
        (request(shape=(1, 1, 2, 2)), "must be N×3×H×W"),
        (request(shape=(3, 2, 2)), "must be N×3×H×W"),
        (request(count=5), "5 values for shape [1, 3, 2, 2]"),
        (request(name="pixels"), "unknown input 'pixels'"),
        (request(outputs=[{"name": "logits"}]), "unknown output"),
        (b"{", "not JSON"),
    ],
)
def test_a_bad_tensor_is_a_400_with_a_v2_error_body(http, body, message):
    response = http.post(INFER, content=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_an_oversized_batch_or_body_is_a_413_before_the_body_is_read_in_full(served):
    small = TestClient(create_app(dataclasses.replace(served, max_body_bytes=4096)))
    response = small.post(INFER, content=request(shape=(9, 3, 2, 2)))
    assert response.status_code == 413 and "exceeds this server's max_batch 8" in response.json()["error"]
    body = request(shape=(1, 3, 32, 32))
    assert len(body) > 4096
    declared = small.post(INFER, content=body)
    assert declared.status_code == 413 and "limit of 4096 bytes" in declared.json()["error"]
    streamed = small.post(INFER, content=iter([body[:3000], body[3000:]]))  # chunked: no declared length
    assert streamed.status_code == 413 and "limit of 4096 bytes" in streamed.json()["error"]
    assert small.post(INFER, content=request()).status_code == 200


def test_unknown_model_and_path_are_404_with_a_v2_error_body(http):
    for response in (http.get("/v2/models/resnet/ready"), http.post("/v2/models/resnet/infer", content=request())):
        assert response.status_code == 404 and "unknown model 'resnet'" in response.json()["error"]
    assert http.get("/v3").json() == {"error": "Not Found"}
