"""The Open Inference Protocol ("v2" REST of KServe, Triton and MLServer) as bytes ↔ numpy arrays.

One codec serves the client and the server. Tensors travel as JSON lists or, with the binary tensor data
extension, as raw little-endian bytes after the JSON header (`Inference-Header-Content-Length` gives the
header's size; each binary tensor carries `parameters.binary_data_size`). A 16×3×256×256 uint8 batch is
14 MB as JSON and 3 MB binary, and binary skips the JSON number parsing entirely.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:  # orjson writes numpy arrays natively and parses several times faster; json is the fallback
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    orjson = None

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"  # what a server lists in `GET /v2` `extensions` when it speaks binary

# v2 datatype → little-endian numpy dtype (BYTES, variable-length strings, is not needed here)
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    **{f"UINT{bits}": np.dtype(f"<u{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"INT{bits}": np.dtype(f"<i{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": np.dtype(f"<f{bits // 8}") for bits in (16, 32, 64)},
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


class ProtocolError(ValueError):
    """A message that is not a valid v2 request or response (the server answers 400)."""


@dataclass
class Tensor:
    """One named tensor of a request or response, and whether it travels (or should travel) as binary."""

    name: str
    array: np.ndarray
    binary: bool = False


@dataclass
class Message:
    """A decoded request or response: its tensors and the rest of its JSON (id, parameters, outputs...)."""

    tensors: list[Tensor]
    fields: dict[str, Any] = field(default_factory=dict)


def datatype_of(array: np.ndarray) -> str:
    try:
        return _NAMES[array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype]
    except KeyError:
        raise ProtocolError(f"no v2 datatype for numpy {array.dtype}") from None


def dumps(value: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(value, default=lambda array: array.tolist(), separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if orjson is not None else json.loads(body)
    except ValueError as error:
        raise ProtocolError(f"body is not JSON: {error}") from None


def encode(fields: dict[str, Any], key: str, tensors: list[Tensor]) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a message whose `key` ("inputs" or "outputs") lists `tensors`."""
    entries, chunks = [], []
    for tensor in tensors:
        array = np.ascontiguousarray(tensor.array)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        entry: dict[str, Any] = {"name": tensor.name, "shape": list(array.shape), "datatype": datatype_of(array)}
        if tensor.binary:
            chunks.append(array.tobytes())
            entry["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            entry["data"] = (
                array.reshape(-1) if orjson is not None and array.dtype != np.float16 else array.reshape(-1).tolist()
            )
        entries.append(entry)
    header = dumps({**fields, key: entries})
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *chunks]), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def decode(body: bytes, header_length: str | None, key: str) -> Message:
    """The tensors listed under `key` in a message, with its other JSON fields; binary ones read after the header."""
    if header_length is None:
        size = len(body)
    elif not header_length.isdigit() or int(header_length) > len(body):
        raise ProtocolError(f"{HEADER_LENGTH} {header_length!r} is not a length within the {len(body)}-byte body")
    else:
        size = int(header_length)
    message = loads(body[:size])
    if not isinstance(message, dict) or not isinstance(message.get(key), list):
        raise ProtocolError(f"expected a JSON object with a list {key!r}")
    offset, tensors = size, []
    for entry in message.pop(key):
        array, binary, offset = _tensor(entry, body, offset, key)
        tensors.append(Tensor(entry["name"], array, binary))
    if offset != len(body):
        raise ProtocolError(f"{len(body) - offset} bytes after the last binary tensor")
    return Message(tensors, message)


def _tensor(entry: Any, body: bytes, offset: int, key: str) -> tuple[np.ndarray, bool, int]:
    """(array, was binary, offset of the next binary tensor) of one `inputs`/`outputs` entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProtocolError(f"every entry of {key!r} needs a name")
    name, shape, datatype = entry["name"], entry.get("shape"), entry.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if datatype not in DATATYPES:
        raise ProtocolError(f"tensor {name!r}: unsupported datatype {datatype!r} (supported: {', '.join(DATATYPES)})")
    dtype, count = DATATYPES[datatype], math.prod(shape)
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"tensor {name!r}: parameters must be an object")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if size != count * dtype.itemsize:
            raise ProtocolError(
                f"tensor {name!r}: binary_data_size {size} is not {count * dtype.itemsize} for {datatype} {shape}"
            )
        if offset + size > len(body):
            raise ProtocolError(f"tensor {name!r}: body ends before its {size} binary bytes")
        return np.frombuffer(body, dtype, count, offset).reshape(shape), True, offset + size
    if "data" not in entry:
        raise ProtocolError(f"tensor {name!r} has neither data nor parameters.binary_data_size")
    return _from_json(entry["data"], dtype, shape, name), False, offset


def _from_json(data: Any, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    """A JSON list (flat or nested, row-major) as an array of `dtype`, refusing values that do not fit it."""
    try:
        values = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"tensor {name!r}: data is a ragged list") from None
    if values.size != math.prod(shape):
        raise ProtocolError(f"tensor {name!r}: {values.size} values for shape {shape}")
    if values.size == 0:
        return np.zeros(shape, dtype)
    allowed = {"b": "b", "u": "bui", "i": "bui", "f": "buif"}[dtype.kind]
    if values.dtype.kind not in allowed:
        raise ProtocolError(f"tensor {name!r}: {values.dtype.kind!r} values are not {_NAMES[dtype]}")
    if dtype.kind in "ui" and values.dtype.kind in "ui":
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise ProtocolError(f"tensor {name!r}: values outside the range of {_NAMES[dtype]}")
    return values.astype(dtype).reshape(shape)
