"""The Open Inference Protocol's binary tensor data extension: splitting request bodies, packing responses.

A body with the `Inference-Header-Content-Length: N` header is N bytes of JSON followed by raw tensors, in
the order of the JSON's inputs that carry `"parameters": {"binary_data_size": bytes}`. Numbers are
little-endian, row-major; a BYTES tensor is each element's 4-byte little-endian length then its bytes
(Triton's binary_tensor_data extension). Responses use the same layout for the outputs asked for in binary.

Plain numpy, no torch: this runs on the event loop (see batching.py for why torch stays off it).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from model_server.registry import BadRequest

HEADER = "Inference-Header-Content-Length"
# Little-endian numpy types of the datatypes the partner sends or receives as numbers.
NUMPY_TYPES = {"UINT8": "<u1", "INT32": "<i4", "INT64": "<i8", "FP32": "<f4"}


def split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """Return the JSON header of a request body and the binary tensor data after it (maybe empty)."""
    if header_length is None:
        size = len(body)
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER} must be a byte count, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise BadRequest(f"{HEADER} is {size} but the body has {len(body)} bytes")
    return parse_json(body[:size], binary_hint=header_length is None), memoryview(body)[size:]


def parse_json(text: bytes, *, binary_hint: bool = False) -> dict:
    """Parse a JSON object; malformed, too deeply nested and non-object bodies are a BadRequest.

    Python's parser refuses nesting deeper than the recursion limit (about 1000) with a RecursionError, at
    as soon as it gets that deep: that becomes a 400, never a 500. Tensor data nested deeper than
    its shape's rank is refused later, where the shape is known (protocol.flatten).
    """
    try:
        body = json.loads(text) if text else {}
    except RecursionError:
        raise BadRequest("JSON nested too deeply: arrays and objects nest at most a few levels here") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        # What a binary body sent without its header looks like (the client's default request is binary).
        hint = f" (a body with binary tensor data needs the {HEADER} header)" if binary_hint else ""
        raise BadRequest(f"malformed JSON: {error}{hint}") from error
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def decode_tensor(name: str, datatype: str, shape: list[int], raw: memoryview) -> list | bytes:
    """Turn one input's raw bytes into flat data: a list of values, or the bytes themselves for UINT8 pixels.

    UINT8 stays bytes: the image input is 196,608 values per item, which the worker thread views in place.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, raw, count)
    numpy_type = NUMPY_TYPES.get(datatype)
    if numpy_type is None:
        raise BadRequest(f"input {name!r}: datatype {datatype} cannot be sent as binary data here")
    width = np.dtype(numpy_type).itemsize
    if len(raw) != count * width:
        raise BadRequest(f"input {name!r}: shape {shape} of {datatype} needs {count * width} bytes, got {len(raw)}")
    if datatype == "UINT8":
        return bytes(raw)
    return np.frombuffer(raw, dtype=numpy_type).tolist()


def _decode_bytes(name: str, raw: memoryview, count: int) -> list[str]:
    """Split a binary BYTES tensor (4-byte length, then the bytes, per element) into UTF-8 strings."""
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"input {name!r}: a BYTES element's 4-byte length is cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"input {name!r}: a BYTES element of {length} bytes runs past the data")
        try:
            values.append(bytes(raw[offset : offset + length]).decode())
        except UnicodeDecodeError:
            raise BadRequest(f"input {name!r} must hold UTF-8 strings") from None
        offset += length
    if len(values) != count:
        raise BadRequest(f"input {name!r}: shape needs {count} BYTES elements, got {len(values)}")
    return values


def encode_tensor(datatype: str, data: list) -> bytes:
    """Pack flat output data as binary tensor data."""
    if datatype == "BYTES":
        encoded = [str(value).encode() for value in data]
        return b"".join(struct.pack("<I", len(value)) + value for value in encoded)
    return np.asarray(data, dtype=NUMPY_TYPES[datatype]).tobytes()


def pack_response(header: dict[str, Any], binary: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """Return a response body and its headers: JSON alone, or the JSON header followed by binary tensors."""
    text = json.dumps(header).encode()
    if not binary:
        return text, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER: str(len(text))}
    return b"".join([text, *binary]), headers
