"""RemoteCloud against a server that fails on a script: each fault ends in retries and the right answer, or in
one clear error; a batch that got its answer is never sent again."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter

import numpy as np
import pytest
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from owsd.components.generator import ScrambledImages
from owsd.components.ledger import KeyLedger
from owsd.errors import CloudResponseError, CloudUnavailableError
from owsd.serving.client import RemoteCloud
from owsd.serving.protocol import HEADER_LENGTH, Tensor, decode, encode
from owsd.serving.server import ServedModel
from tests.serving.conftest import MODEL, free_port, in_process, live_server

TIMEOUT = 0.5


class FaultyServer:
    """A v2 server (JSON only) whose infer endpoint plays `schedule`, one fault per request, then answers."""

    def __init__(self, served: ServedModel) -> None:
        self.served, self.schedule = served, []
        self.requests: list[str] = []  # the fault each request met
        self.answered: Counter[str] = Counter()  # digest of a batch → correct answers sent for it
        self.app = Starlette(routes=[
            Route("/v2/models/{name}", lambda request: JSONResponse(served.metadata())),
            Route("/v2/models/{name}/infer", self.infer, methods=["POST"]),
        ])  # fmt: skip

    async def infer(self, request: Request) -> Response:
        fault = self.schedule.pop(0) if self.schedule else "ok"
        self.requests.append(fault)
        body = await request.body()
        pixels = decode(body, request.headers.get(HEADER_LENGTH), "inputs").tensors[0].array
        status, _, retry_after = fault.partition(":")  # "429:0.3": a 429 with `Retry-After: 0.3`
        if status in ("500", "429", "503"):
            headers = {"Retry-After": retry_after} if retry_after else None
            return JSONResponse({"error": f"injected {status}"}, status_code=int(status), headers=headers)
        if fault == "400":
            return JSONResponse({"error": "injected 400"}, status_code=400)
        if fault == "malformed":
            return Response(b'{"outputs": [', media_type="application/json")
        if fault == "slow":
            await asyncio.sleep(TIMEOUT * 3)
        probabilities = self.served.infer(pixels)
        if fault == "short":
            probabilities = probabilities[:, :-1]
        if fault == "int64":
            probabilities = probabilities.astype(np.int64)
        if fault == "ok":
            self.answered[hashlib.sha256(pixels.tobytes()).hexdigest()] += 1
        body, headers = encode({"model_name": MODEL}, "outputs", [Tensor("probabilities", probabilities)])
        return Response(body, headers=headers)


@pytest.fixture(scope="module")
def faulty(served):
    server = FaultyServer(served)
    with live_server(server.app) as url:
        server.url = url
        yield server


@pytest.fixture
def scripted(faulty):
    faulty.schedule, faulty.requests = [], []
    faulty.answered.clear()
    return faulty


def classify(url: str, images: np.ndarray, ledger: KeyLedger | None = None, **settings) -> torch.Tensor:
    settings = {"batch_size": 4, "concurrency": 2, "retries": 3, "backoff": 0.01, "max_backoff": 0.05, **settings}
    client = RemoteCloud(url, MODEL, timeout=TIMEOUT, **settings).open()
    client.ledger = ledger
    return client(ScrambledImages(torch.from_numpy(images), "fingerprint"))


@pytest.mark.parametrize(
    ("schedule", "settings"),
    [(["503", "429", "503"], {}), (["slow"], {}), (["500", "500"], {"retry_on_500": True})],
)
def test_transient_faults_end_in_the_right_answer_sent_once(scripted, images, schedule, settings, caplog, tmp_path):
    scripted.schedule = list(schedule)
    ledger = KeyLedger(tmp_path / "ledger.sqlite", "test")
    with caplog.at_level(logging.WARNING, logger="owsd.serving.client"):
        probabilities = classify(scripted.url, images, ledger, **settings)
    (key,) = ledger.keys()  # each retried request resends a batch of 4 the cloud may have seen: resends
    assert (key.exposed, key.resends) == (len(images), 4 * len(schedule))
    torch.testing.assert_close(probabilities, torch.from_numpy(in_process(images, 4)), atol=1e-6, rtol=0)
    assert len(scripted.requests) == 3 + len(schedule)  # 3 batches, one more request per fault
    assert sorted(scripted.answered.values()) == [1, 1, 1]
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == len(schedule) and all(scripted.url in line and "retry" in line for line in retries)


@pytest.mark.parametrize(
    ("schedule", "waits"),
    [(["429:0.3", "503:0"], [0.3, 0.0]), (["503:100"], [0.5]), (["429:soon", "429:-1"], None)],
)
def test_retry_after_sets_the_wait_up_to_max_backoff(scripted, images, schedule, waits, caplog):
    scripted.schedule = list(schedule)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="owsd.serving.client"):
        probabilities = classify(scripted.url, images[:4], backoff=0.01, max_backoff=0.5)
    elapsed = time.monotonic() - start
    torch.testing.assert_close(probabilities, torch.from_numpy(in_process(images[:4], 4)), atol=1e-6, rtol=0)
    logged = [float(re.search(r" in ([\d.]+) s$", r.getMessage())[1]) for r in caplog.records]
    if waits is None:  # not a number of seconds: the jittered backoff, at most 0.01 then 0.02 s
        assert len(logged) == 2 and all(wait <= 0.02 for wait in logged)
    else:
        assert logged == waits and elapsed >= sum(waits)
    assert len(scripted.requests) == 1 + len(schedule) and sorted(scripted.answered.values()) == [1]


def test_a_server_down_at_start_is_waited_for(served, images):
    server = FaultyServer(served)
    port = free_port()
    with live_server(server.app, port=port, delay=0.5) as url:
        probabilities = classify(url, images, retries=30, max_backoff=0.2)
    assert probabilities.shape == (10, 1000) and sorted(server.answered.values()) == [1, 1, 1]


@pytest.mark.parametrize(
    ("schedule", "settings", "error", "message", "requests"),
    [
        (
            ["500"],
            {},
            CloudUnavailableError,
            "refused POST /v2/models/test_efficientnet/infer: HTTP 500: injected 500",
            1,
        ),
        (["503"] * 9, {}, CloudUnavailableError, "after 4 attempts: HTTP 503: injected 503", 4),
        (["400"], {}, CloudResponseError, "HTTP 400: injected 400", 1),
        (["malformed"], {}, CloudResponseError, "is not a v2 response: body is not JSON", 1),
        (["short"], {}, CloudResponseError, r"output shape \[4, 999\], expected \[4, 1000\]", 1),
        (["int64"], {}, CloudResponseError, "type int64, not FP16/FP32/FP64", 1),
    ],
)
def test_lasting_faults_end_in_one_clear_error(scripted, images, schedule, settings, error, message, requests):
    scripted.schedule = list(schedule)
    with pytest.raises(error, match=message) as raised:
        classify(scripted.url, images[:4], **settings)
    assert scripted.url in str(raised.value)
    assert len(scripted.requests) == requests


def test_nobody_listening_is_one_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        CloudUnavailableError, match=f"cloud at {url} did not answer GET .* after 3 attempts: ConnectError"
    ):
        RemoteCloud(url, MODEL, retries=2, backoff=0.01, max_backoff=0.01).open()
