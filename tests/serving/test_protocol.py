from __future__ import annotations

import numpy as np
import pytest

from owsd.serving.protocol import DATATYPES, HEADER_LENGTH, ProtocolError, Tensor, decode, dumps, encode


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("datatype", ["UINT8", "INT64", "FP32", "FP16", "BOOL"])
def test_tensors_round_trip(binary, datatype):
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(DATATYPES[datatype])
    other = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    body, headers = encode({"id": "r1"}, "inputs", [Tensor("a", array, binary), Tensor("b", other, binary)])
    assert (HEADER_LENGTH in headers) == binary
    message = decode(body, headers.get(HEADER_LENGTH), "inputs")
    assert message.fields == {"id": "r1"}
    assert [(t.name, t.binary) for t in message.tensors] == [("a", binary), ("b", binary)]
    for sent, got in zip([array, other], message.tensors):
        assert got.array.dtype == sent.dtype and np.array_equal(got.array, sent)


def test_binary_is_raw_bytes_after_the_json_header():
    pixels = np.arange(12, dtype=np.uint8).reshape(1, 3, 2, 2)
    body, headers = encode({}, "inputs", [Tensor("x", pixels, True)])
    size = int(headers[HEADER_LENGTH])
    assert body[size:] == pixels.tobytes() and b'"binary_data_size":12' in body[:size]


def test_mixed_json_and_binary_and_nested_json_data():
    header = dumps({"outputs": [
        {"name": "p", "shape": [2, 2], "datatype": "FP32", "data": [[0.25, 0.75], [1, 0]]},
        {"name": "q", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
    ]})  # fmt: skip
    body = header + np.array([5, -6], "<i4").tobytes()
    p, q = decode(body, str(len(header)), "outputs").tensors
    assert p.array.tolist() == [[0.25, 0.75], [1.0, 0.0]] and p.array.dtype == np.float32
    assert q.array.tolist() == [5, -6] and q.binary


def bad(entry: dict) -> bytes:
    return dumps({"inputs": [{"name": "x", **entry}]})


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{not json", None, "not JSON"),
        (b'{"inputs": 3}', None, "list 'inputs'"),
        (bad({"shape": [2], "datatype": "UINT8", "data": [1, 2, 3]}), None, "3 values for shape [2]"),
        (bad({"shape": [2], "datatype": "UINT8", "data": [1, 256]}), None, "outside the range of UINT8"),
        (bad({"shape": [2], "datatype": "UINT8", "data": [1.5, 2]}), None, "are not UINT8"),
        (bad({"shape": [2], "datatype": "UINT8", "data": ["a", "b"]}), None, "are not UINT8"),
        (bad({"shape": [2, 2], "datatype": "UINT8", "data": [[1], [2, 3]]}), None, "ragged"),
        (bad({"shape": [2], "datatype": "BYTES", "data": ["a", "b"]}), None, "unsupported datatype 'BYTES'"),
        (bad({"shape": [-1], "datatype": "UINT8", "data": []}), None, "non-negative"),
        (bad({"shape": [2], "datatype": "UINT8"}), None, "neither data nor"),
        (bad({"shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 8}}), None, "is not 16"),
        (bad({"shape": [4], "datatype": "UINT8", "parameters": {"binary_data_size": 4}}), None, "body ends"),
        (bad({"shape": [1], "datatype": "UINT8", "data": [1]}) + b"xx", "0", "within"),
    ],
)
def test_bad_messages_are_protocol_errors(body, header_length, message):
    if header_length == "0":
        header_length = "999999"
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(body, header_length, "inputs")


def test_trailing_bytes_are_refused():
    body, headers = encode({}, "inputs", [Tensor("x", np.zeros(3, np.uint8), True)])
    with pytest.raises(ProtocolError, match="1 bytes after"):
        decode(body + b"!", headers[HEADER_LENGTH], "inputs")
