"""Image decoding: what people upload, good and bad."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from uniformer.data import ImageDecodeError, load_image


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (a decompression bomb's signature) with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(_jpeg_bytes(img, exif=exif))
    assert out.size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "LA", "RGBA", "I;16", "I", "F", "YCbCr"])
def test_modes_become_rgb(mode):
    img = Image.new(mode, (8, 6))
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_sixteen_bit_is_rescaled_not_clipped():
    arr = np.full((4, 4), 32896, dtype=np.uint16)  # mid-grey in 16 bits
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = np.asarray(load_image(buf.getvalue()))
    assert out.shape == (4, 4, 3) and abs(int(out[0, 0, 0]) - 128) <= 1


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(load_image(img))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg_file():
    data = _jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    out = np.asarray(load_image(data))
    assert out[0, 0, 0] > 200 and out[0, 0, 1] < 60  # red


def test_arrays_and_paths(tmp_path):
    arr = np.zeros((5, 7, 3), dtype=np.uint8)
    assert load_image(arr).size == (7, 5)
    p = tmp_path / "x.png"
    Image.fromarray(arr).save(p)
    assert load_image(p).size == (7, 5)
    assert load_image(str(p)).size == (7, 5)


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("just some text, named like a photo"), "not an image"),
    (lambda p: p.write_bytes(_jpeg_bytes(Image.new("RGB", (256, 256), (9, 99, 199)))[:300]), "truncated or corrupt"),
    (lambda p: p.write_bytes(_png_header_only(20000, 20000)), "megapixels"),
    (lambda p: p.write_bytes(_png_header_only(60000, 60000)), "megapixels|too large"),
])
def test_bad_files_give_clear_errors(tmp_path, make, match):
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(ImageDecodeError, match=match):
        load_image(path)


def test_missing_file_and_bad_types(tmp_path):
    with pytest.raises(ImageDecodeError, match="no such image file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="cannot read an image"):
        load_image(12345)
    with pytest.raises(ImageDecodeError, match="shape"):
        load_image(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ImageDecodeError, match="empty"):
        load_image(b"")


def test_custom_pixel_limit():
    with pytest.raises(ImageDecodeError, match="limit is 0 megapixels"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=5000)
