"""A reference Open Inference Protocol server for any timm classifier: the "cloud" of demos and tests.

It answers what `LocalCloud` computes in-process (the model's own preprocessing, softmax probabilities), so a
remote run can be compared number for number with an in-process one. Binary tensors are advertised the way
Triton does it: `binary_tensor_data` in the server metadata's `extensions`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from owsd.components.cloud import LocalCloud
from owsd.serving.protocol import BINARY_EXTENSION, HEADER_LENGTH, ProtocolError, Tensor, datatype_of, decode, encode

INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
MAX_SIDE = 4096  # larger images are refused before the model allocates for them
DEFAULT_MAX_BODY_MB = 256  # a request body larger than this is refused (413) before it is read in full


class TooLarge(ProtocolError):
    """A request larger than this server accepts: answered 413, not 400."""


@dataclass
class ServedModel:
    """A classifier and its preprocessing, run one batch at a time (the model uses every core already)."""

    name: str
    classifier: torch.nn.Module
    preprocess: torch.nn.Module
    num_classes: int
    max_batch: int
    max_body_bytes: int = DEFAULT_MAX_BODY_MB << 20
    weights_id: str = ""  # which weights, in the metadata: a client names its cache by what is served

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str,
        weights: str,
        name: str | None = None,
        max_batch: int = 64,
        max_body_mb: int = DEFAULT_MAX_BODY_MB,
    ) -> ServedModel:
        """The timm model `model` exactly as `LocalCloud(model, weights)` runs it."""
        cloud = LocalCloud(model, weights)
        client, served = cloud.open(), name or model
        classifier = client.classifier
        return cls(served, classifier, client.preprocess, classifier.num_classes, max_batch, max_body_mb << 20,
                   cloud.cloud_id)  # fmt: skip

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "pytorch_timm",
            "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, 3, -1, -1]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, self.num_classes]}],
            "parameters": {"weights": self.weights_id},
        }

    def check(self, tensor: Tensor) -> None:
        """Refuse what is not a batch of 8-bit RGB images this server will run (as a 400)."""
        array, shape = tensor.array, list(tensor.array.shape)
        if tensor.name != INPUT_NAME:
            raise ProtocolError(f"unknown input {tensor.name!r}; model {self.name} takes {INPUT_NAME!r}")
        if array.dtype != np.uint8:
            raise ProtocolError(f"input {INPUT_NAME!r} must be UINT8, got {datatype_of(array)}")
        if array.ndim != 4 or shape[1] != 3 or min(shape) < 1 or max(shape[2:]) > MAX_SIDE:
            raise ProtocolError(f"input {INPUT_NAME!r} must be N×3×H×W with 1 ≤ H, W ≤ {MAX_SIDE}, got {shape}")
        if shape[0] > self.max_batch:
            raise TooLarge(f"batch of {shape[0]} images exceeds this server's max_batch {self.max_batch}")

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock, torch.inference_mode():
            images = torch.from_numpy(np.array(pixels))  # a copy: the request body is read-only
            return self.classifier(self.preprocess(images)).softmax(-1).float().numpy()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused (`TooLarge`) as soon as it is known to exceed `limit` bytes: by its declared
    length before anything is read, or while a body of undeclared length streams in."""
    declared = request.headers.get("content-length", "")
    too_large = f"request body exceeds this server's limit of {limit} bytes (--max_body_mb)"
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(*models: ServedModel) -> Starlette:
    """The v2 REST endpoints over `models` (health, server and model metadata, readiness, infer)."""
    served = {model.name: model for model in models}

    def model_of(request: Request) -> ServedModel:
        name = request.path_params["name"]
        if name not in served:
            raise HTTPException(404, f"unknown model {name!r}; this server has {', '.join(served)}")
        return served[name]

    async def server_metadata(request: Request) -> JSONResponse:
        return JSONResponse({"name": "owsd", "version": "1", "extensions": [BINARY_EXTENSION]})

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    async def model_metadata(request: Request) -> JSONResponse:
        return JSONResponse(model_of(request).metadata())

    async def model_ready(request: Request) -> JSONResponse:
        return JSONResponse({"name": model_of(request).name, "ready": True})

    async def infer(request: Request) -> Response:
        model = model_of(request)
        try:
            message = decode(
                await bounded_body(request, model.max_body_bytes), request.headers.get(HEADER_LENGTH), "inputs"
            )
            if len(message.tensors) != 1:
                raise ProtocolError(f"model {model.name} takes exactly one input, {INPUT_NAME!r}")
            model.check(message.tensors[0])
            binary = _binary_output(message.fields, model)
        except ProtocolError as bad:
            return error(413 if isinstance(bad, TooLarge) else 400, str(bad))
        probabilities = await run_in_threadpool(model.infer, message.tensors[0].array)
        fields = {"model_name": model.name, "model_version": "1"}
        if isinstance(message.fields.get("id"), str):
            fields["id"] = message.fields["id"]
        body, headers = encode(fields, "outputs", [Tensor(OUTPUT_NAME, probabilities, binary)])
        return Response(body, headers=headers)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, exc.detail)

    return Starlette(
        routes=[
            Route("/v2", server_metadata),
            Route("/v2/health/live", live),
            Route("/v2/health/ready", ready),
            Route("/v2/models/{name}", model_metadata),
            Route("/v2/models/{name}/ready", model_ready),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _binary_output(fields: dict, model: ServedModel) -> bool:
    """Whether the answer goes binary: the request-level `binary_data_output`, or the output's own `binary_data`."""
    parameters = fields.get("parameters") or {}
    binary = bool(parameters.get("binary_data_output", False)) if isinstance(parameters, dict) else False
    outputs = fields.get("outputs") or []
    if not isinstance(outputs, list):
        raise ProtocolError("outputs must be a list")
    for output in outputs:
        if not isinstance(output, dict) or output.get("name") != OUTPUT_NAME:
            raise ProtocolError(f"unknown output {output!r}; model {model.name} returns {OUTPUT_NAME!r}")
        binary = bool((output.get("parameters") or {}).get("binary_data", binary))
    return binary
