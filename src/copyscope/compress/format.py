"""The .cs file: a fixed header, the range coder's words, and a CRC-32 trailer.

    offset  bytes  field
         0      4  magic b"CSCD"
         4      2  format version (1)
         6     32  sha256 of the model's checkpoint file: only that model can decode the payload
        38      4  number of images
        42      6  height, width, channels (2 bytes each; texts of L bytes: 1, L, 1)
        48      4  images coded together (the batch grouping the decoder must repeat)
        52     32  sha256 of the pixels, uint8 (N, H, W, C): a decode that does not reproduce them
                   is refused, whatever the reason (for example a machine whose floats differ)
        84      8  payload length in bytes
        92      -  payload: the range coder's 32-bit words, little-endian
       end      4  CRC-32 of everything before it

All integers are little-endian. The reader checks magic, version, length and CRC before it
trusts any other field, so a truncated or damaged file is refused before decoding starts.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from copyscope.errors import CopyscopeError

MAGIC = b"CSCD"
VERSION = 1
_HEADER = struct.Struct("<4sH32sIHHHI32sQ")
_TRAILER = struct.Struct("<I")
HEADER_BYTES = _HEADER.size + _TRAILER.size  # what a file costs beyond its payload


@dataclass(frozen=True)
class Header:
    model_sha256: str
    count: int
    shape: tuple[int, int, int]
    """(H, W, C) of every image."""
    batch: int
    pixels_sha256: str


def pixels_sha256(images: np.ndarray) -> str:
    """The checksum of decoded pixels: sha256 of the uint8 (N, H, W, C) array's bytes."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).data).hexdigest()


def pack(header: Header, payload: bytes) -> bytes:
    h, w, c = header.shape
    head = _HEADER.pack(MAGIC, VERSION, bytes.fromhex(header.model_sha256), header.count, h, w, c,
                        header.batch, bytes.fromhex(header.pixels_sha256), len(payload))
    body = head + payload
    return body + _TRAILER.pack(zlib.crc32(body))


def unpack(data: bytes, where: str) -> tuple[Header, bytes]:
    """Header and payload of a .cs file; one sentence naming ``where`` if it is not intact."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CopyscopeError(f"{where} is not a copyscope compressed file (no CSCD magic).")
    if len(data) < _HEADER.size + _TRAILER.size:
        raise CopyscopeError(f"{where} is truncated ({len(data)} bytes, shorter than the "
                             "header).")
    _, version, model, count, h, w, c, batch, pixels, length = _HEADER.unpack_from(data)
    if version != VERSION:
        raise CopyscopeError(f"{where} has format version {version}; this copyscope reads "
                             f"version {VERSION}.")
    expected = _HEADER.size + length + _TRAILER.size
    if len(data) != expected:
        raise CopyscopeError(f"{where} is truncated or has extra bytes ({len(data):,} bytes; its "
                             f"header promises {expected:,}).")
    (crc,) = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    if zlib.crc32(data[: -_TRAILER.size]) != crc:
        raise CopyscopeError(f"{where} is corrupt (its CRC-32 does not match its contents).")
    if count < 1 or batch < 1 or min(h, w, c) < 1 or length % 4:
        raise CopyscopeError(f"{where} is corrupt (its header describes no valid images).")
    header = Header(model.hex(), count, (h, w, c), batch, pixels.hex())
    return header, data[_HEADER.size : _HEADER.size + length]
