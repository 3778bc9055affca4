"""The one image-decoding path (training, prepare, predict, detect, serve): huge images and fuzzed bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facemask.vision.images import ImageError, load_frame, load_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds almost nothing: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    with pytest.raises(ImageError, match=r"bomb\.png: image too large to decode safely"):
        load_image(path)
    with pytest.raises(ImageError, match="too large"):
        load_frame("upload.png", path.read_bytes())


def encoded(kind: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)).save(buffer, kind)
    return buffer.getvalue()


SEEDS = {kind: encoded(kind) for kind in ("PNG", "JPEG", "WEBP", "BMP", "GIF")}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzzed_images_decode_or_raise_the_documented_error(
    tmp_path: Path, kind: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    """Mutated and truncated real files, as an upload and as a file: a uint8 array or an ImageError that
    names the input, nothing else."""
    data = bytearray(SEEDS[kind])
    for position, value in edits:
        data[position % len(data)] = value
    path = tmp_path / f"fuzz.{kind.lower()}"
    path.write_bytes(bytes(data[:cut]))
    for name, decode in (
        (str(path), lambda: load_image(path)),
        ("upload", lambda: load_frame("upload", path.read_bytes())),
    ):
        try:
            out = decode()
        except ImageError as err:
            assert str(err).startswith(f"{name}: ")
            continue
        assert out.dtype == np.uint8 and (out.shape == (28, 28) or out.ndim == 3)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2_000))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        load_frame("random", data)
    except ImageError as err:
        assert str(err).startswith("random: ")
