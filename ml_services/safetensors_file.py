"""Read a `.safetensors` file into numpy arrays, without torch or the safetensors package.

The format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian data. Use `read_tensors(path)`;
every array is copied out of the file's buffer so that it is aligned (BLAS and
onnxruntime take a slow path, or refuse, on unaligned data) and owns its memory.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_tensors(path: Path) -> tuple[dict[str, npt.NDArray[np.generic]], str]:
    """Every tensor of the file by name, and the file's sha256 (its artefact hash)."""
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_DTYPES[meta["dtype"]]).newbyteorder("<")
        start, end = meta["data_offsets"]
        count = (end - start) // dtype.itemsize
        array = np.frombuffer(raw, dtype, count=count, offset=base + start)
        tensors[name] = array.reshape(meta["shape"]).astype(dtype.newbyteorder("="))
    return tensors, hashlib.sha256(raw).hexdigest()
