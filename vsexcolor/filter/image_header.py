"""The size of an image file read from its header, before any pixel is decoded.

A few hundred bytes of a PNG can declare 30000 x 30000 pixels that decode to gigabytes;
the header says so first. Covers the formats :data:`~vsexcolor.filter.reference.IMAGE_SUFFIXES`
names (PNG, JPEG, TIFF, WebP, BMP), told apart by their content, not their name.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple

#: Bytes into a JPEG within which its frame header must begin (after Exif, ICC profile and
#: thumbnail segments, which are skipped by seeking, not read).
_JPEG_SEARCH = 1 << 24
#: Entries of a TIFF's first directory looked through for its size (a real one has a few dozen).
_TIFF_ENTRIES = 4096


class Header(NamedTuple):
    """What an image file's header declares: its ``format`` ("png", "jpeg", "tiff", "webp"
    or "bmp") and its size in pixels."""

    format: str
    width: int
    height: int


def declared_size(path: Path) -> Header | None:
    """What ``path``'s header declares; None where the file is none of the formats covered,
    or its header is cut short.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        head = f.read(32)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                size = struct.unpack(">II", head[16:24])
                kind = "png"
            elif head.startswith(b"\xff\xd8"):
                size, kind = _jpeg(f), "jpeg"
            elif head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
                size, kind = _tiff(f, "<" if head[:1] == b"I" else ">"), "tiff"
            elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                size, kind = _webp(head[12:16], f), "webp"
            elif head[:2] == b"BM":
                size, kind = _bmp(head), "bmp"
            else:
                return None
        except (struct.error, ValueError, OverflowError):  # cut short, or an offset past any file
            return None
    return None if size is None else Header(kind, *size)


def _jpeg(f: BinaryIO) -> tuple[int, int] | None:
    """The frame header (SOF0..SOF15 but DHT, JPG and DAC, which share the range) declares
    height then width; segments before it are skipped by their length, and stray bytes
    between segments as libjpeg skips them (some cameras and tools write them)."""
    f.seek(2)
    while f.tell() < _JPEG_SEARCH:
        byte = f.read(1)
        while byte and byte != b"\xff" and f.tell() < _JPEG_SEARCH:
            byte = f.read(1)
        if byte != b"\xff":
            return None
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        code = marker[0] if marker else None
        if code is None or code == 0xD9:  # end of image
            return None
        if 0xD0 <= code <= 0xD8 or code == 0x01:  # no length follows
            continue
        (length,) = struct.unpack(">H", f.read(2))
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">xHH", f.read(5))
            return width, height
        f.seek(length - 2, 1)
    return None


#: TIFF field types a size may have: SHORT, LONG, LONG8 (BigTIFF), as struct formats.
_TIFF_INTEGERS = {3: "H", 4: "I", 16: "Q"}


def _tiff(f: BinaryIO, order: str) -> tuple[int, int] | None:
    """Tags 256 (ImageWidth) and 257 (ImageLength) of the first image file directory, in
    classic TIFF or BigTIFF (version 43, 8-byte offsets and counts)."""
    f.seek(2)
    (version,) = struct.unpack(order + "H", f.read(2))
    big = version == 43
    offset = struct.unpack(order + ("4xQ" if big else "I"), f.read(12 if big else 4))[0]
    f.seek(offset)
    (count,) = struct.unpack(order + ("Q" if big else "H"), f.read(8 if big else 2))
    sizes = {}
    for _ in range(min(count, _TIFF_ENTRIES)):
        entry = f.read(20 if big else 12)
        tag, kind = struct.unpack(order + "HH", entry[:4])
        value = entry[12:] if big else entry[8:]  # the value itself where it fits the field
        if tag in (256, 257) and kind in _TIFF_INTEGERS:
            sizes[tag] = struct.unpack_from(order + _TIFF_INTEGERS[kind], value)[0]
    return (sizes[256], sizes[257]) if len(sizes) == 2 else None


def _webp(chunk: bytes, f: BinaryIO) -> tuple[int, int] | None:
    """From the first chunk: VP8X (extended) declares the canvas, VP8L (lossless) and VP8
    (lossy) their bitstream's size."""
    f.seek(20)
    data = f.read(10)
    if chunk == b"VP8X":
        w, h = int.from_bytes(data[4:7], "little"), int.from_bytes(data[7:10], "little")
        return w + 1, h + 1
    if chunk == b"VP8L" and data[:1] == b"\x2f":
        (bits,) = struct.unpack("<I", data[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[6:10])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _bmp(head: bytes) -> tuple[int, int]:
    """The DIB header after the 14-byte file header: 16-bit sizes in the old 12-byte core
    header, else signed 32-bit ones (a negative height: rows stored top down)."""
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:
        return struct.unpack("<HH", head[18:22])
    w, h = struct.unpack("<ii", head[18:26])
    return abs(w), abs(h)
