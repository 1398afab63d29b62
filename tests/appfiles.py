"""Files and processes for the app tests: an offline Hub cache with synthetic official weights,
bad image files of the kinds users upload, and ``python app.py`` servers and Chromium for the
browser tests (plain functions; each test module wraps them in fixtures)."""
from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from contextlib import contextmanager
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


def make_odd_images(directory: Path, photo: Path) -> dict[str, Path]:
    """Write valid but unusual images of the kinds users upload into ``directory`` -> {kind: path},
    all made from ``photo`` so they hold a real scene: 'cmyk' (CMYK JPEG), 'sixteen_bit' (16-bit
    grey PNG), 'grey' (8-bit grey PNG), 'rgba' (PNG with a transparent border), 'one_pixel' (1x1 PNG),
    'wide' (3000x8 PNG), 'tall' (8x3000 PNG), 'animated' (3-frame GIF), 'exif_rotated' (JPEG stored
    sideways with EXIF orientation 6) and 'megapixels_24' (6000x4000 JPEG). Every app tab must
    answer each of them."""
    import numpy as np
    from PIL import Image

    rgb = Image.open(photo).convert("RGB")
    files = {"cmyk": directory / "cmyk.jpg", "sixteen_bit": directory / "sixteen_bit.png",
             "grey": directory / "grey.png",
             "rgba": directory / "rgba.png", "one_pixel": directory / "one_pixel.png", "wide": directory / "wide.png",
             "tall": directory / "tall.png", "animated": directory / "animated.gif",
             "exif_rotated": directory / "exif_rotated.jpg", "megapixels_24": directory / "megapixels_24.jpg"}
    rgb.convert("CMYK").save(files["cmyk"], "JPEG", quality=90)
    grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # the full 16-bit range
    Image.fromarray(grey).save(files["sixteen_bit"])  # mode I;16
    rgb.convert("L").save(files["grey"])
    rgba = rgb.convert("RGBA")
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (rgba.width // 8, rgba.height // 8, rgba.width * 7 // 8, rgba.height * 7 // 8))
    rgba.putalpha(alpha)
    rgba.save(files["rgba"])
    rgb.resize((1, 1)).save(files["one_pixel"])
    rgb.resize((3000, 8)).save(files["wide"])
    rgb.resize((8, 3000)).save(files["tall"])
    frames = [rgb.resize((160, 120)).rotate(angle) for angle in (0, 10, 20)]
    frames[0].save(files["animated"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to display
    rgb.transpose(Image.Transpose.ROTATE_90).save(files["exif_rotated"], "JPEG", quality=90, exif=exif)
    rgb.resize((6000, 4000), Image.BILINEAR).save(files["megapixels_24"], "JPEG", quality=80)
    return files


def make_unusable_files(directory: Path, photo: Path) -> dict[str, Path]:
    """:func:`make_bad_images` plus what browsers and scripts also send as "images": 'html' (a web
    page saved as .png) and 'svg' (a vector drawing, which the app cannot rasterize) -> {kind: path}.
    Every app tab must refuse each with its own message in words."""
    files = make_bad_images(directory, photo)
    files["html"] = directory / "page.png"
    files["html"].write_text("<!DOCTYPE html>\n<html><head><title>Cat</title></head>"
                             "<body><img src='cat.jpg'></body></html>\n")
    files["svg"] = directory / "drawing.svg"
    files["svg"].write_text("<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'>"
                            "<circle cx='32' cy='32' r='20' fill='red'/></svg>\n")
    return files


REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(hf_home: Path, log: Path, extra_env: dict[str, str] | None = None):
    """Run ``python app.py`` offline with ``hf_home`` as HF_HOME (output to ``log``), plus
    ``extra_env``; yields (process, url) as soon as it is started. The process is always terminated."""
    port = free_port()
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **(extra_env or {})}
    env.pop("UNIFORMER_CHECKPOINT_DIR", None)
    env.pop("HF_HUB_CACHE", None)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_app(tmp: Path, timeout_s: float, extra_env: dict[str, str] | None = None):
    """``python app.py`` offline with :func:`make_hub_home` under ``tmp`` (log: ``tmp/app.log``),
    up and answering; yields its URL. The process is always terminated."""
    log = tmp / "app.log"
    with app_server(make_hub_home(tmp / "hf_home"), log, extra_env) as (process, url):
        wait_until_up(process, url, log, timeout_s)
        yield url


def wait_until_up(process: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    """Return once ``url`` answers 200; fail the test (with the log's tail) if the server exits or
    does not answer within ``timeout_s`` seconds."""
    import pytest

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"app.py did not answer at {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


def require_chromium() -> None:
    """Fail (never skip) when the browser the end-to-end tests drive is missing."""
    import pytest

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")


@contextmanager
def chromium_browser(expect_timeout_ms: int | None = 60_000):
    """Headless Chromium (Playwright, /usr/bin/chromium) for the browser tests, with Playwright's
    ``expect`` timeout raised to ``expect_timeout_ms`` while it is open (the CPU is shared and busy;
    None keeps Playwright's default)."""
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if expect_timeout_ms is not None:
            expect.set_options(timeout=expect_timeout_ms)
        try:
            yield browser
        finally:
            expect.set_options(timeout=None)
            browser.close()


@contextmanager
def browser_page(browser, width: int = 1400, height: int = 1000, timeout_ms: int = 60_000):
    """A page of a fresh browser context with a ``width`` x ``height`` viewport (pixels) and
    ``timeout_ms`` as the default action timeout; the context is closed afterwards."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(timeout_ms)
    try:
        yield context.new_page()
    finally:
        context.close()
