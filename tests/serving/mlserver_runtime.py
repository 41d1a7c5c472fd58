"""A small custom MLServer runtime serving the tests' tiny timm classifier, as `owsd serve-cloud` serves it.

MLServer speaks JSON tensors only; `tests/serving/test_interop.py` starts it with `mlserver start`."""

from __future__ import annotations

import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from owsd.serving.server import INPUT_NAME, OUTPUT_NAME, ServedModel


class TimmCloud(MLModel):
    """`ServedModel.load(uri, "random")`: the model of `model-settings.json`'s `parameters.uri`."""

    async def load(self) -> bool:
        torch.set_num_threads(1)
        self.served = ServedModel.load(self.settings.parameters.uri, "random", self.name)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        (request,) = [tensor for tensor in payload.inputs if tensor.name == INPUT_NAME]
        probabilities = self.served.infer(NumpyCodec.decode_input(request))
        return InferenceResponse(
            model_name=self.name, id=payload.id, outputs=[NumpyCodec.encode_output(OUTPUT_NAME, probabilities)]
        )
