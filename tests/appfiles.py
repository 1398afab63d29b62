"""Files for the app tests: an offline Hub cache with synthetic official weights, and bad image
files of the kinds users upload (plain functions; each test module wraps them in fixtures)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from hubcache import add_to_hub_cache, official_state_dict

SMALL_HUB_REPO, SMALL_HUB_FILE = "Sense-X/uniformer_image", "uniformer_small_in1k.pth"
SMALL_HUB_DESCRIPTION = f"official Hub checkpoint {SMALL_HUB_REPO}/{SMALL_HUB_FILE}"


def make_hub_home(directory: Path) -> Path:
    """Make ``directory`` an ``HF_HOME`` whose Hub cache holds ``Sense-X/uniformer_image/
    uniformer_small_in1k.pth`` with synthetic weights in the official format (use it with
    ``HF_HUB_OFFLINE=1``). Returns ``directory``."""
    add_to_hub_cache(directory, SMALL_HUB_REPO, SMALL_HUB_FILE, official_state_dict("image_s"))
    return directory


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bilevel_png(path: Path, width: int, height: int, stored_rows: int | None = None) -> Path:
    """A black 1-bit PNG of ``width`` x ``height``, written row by row (never held in memory).
    ``stored_rows`` < height stores only that many rows of pixel data: a tiny file whose header
    promises a huge image, as decompression bombs do."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = [compressor.compress(row) for _ in range(height if stored_rows is None else stored_rows)]
    idat.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(idat))
                     + _png_chunk(b"IEND", b""))
    return path


def make_bad_images(directory: Path, photo: Path) -> dict[str, Path]:
    """Write files that are not usable images into ``directory`` -> {kind: path}: 'empty' (0 bytes),
    'truncated' (the first half of a JPEG of ``photo``), 'text' (a text file named .jpg), 'huge'
    (a valid 20000x20000 PNG) and 'bomb' (a 200000x200000 PNG header in a tiny file)."""
    from PIL import Image

    jpeg = io.BytesIO()
    Image.open(photo).convert("RGB").save(jpeg, "JPEG", quality=90)
    files = {"empty": directory / "empty.jpg", "truncated": directory / "truncated.jpg",
             "text": directory / "notes.jpg"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    files["text"].write_text("these are my notes, not a photo\n" * 20)
    files["huge"] = write_bilevel_png(directory / "huge.png", 20000, 20000)
    files["bomb"] = write_bilevel_png(directory / "bomb.png", 200_000, 200_000, stored_rows=4)
    return files
