"""load_image_reduced (issue 13): very large photos decoded at reduced size, then one resize."""
import io

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from uniformer.data import ImageDecodeError, load_image
from uniformer.data.images import load_image_reduced


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((1600, 1200), Image.BICUBIC)  # smooth, like a photo
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees on display
    img.save(path, quality=92, exif=exif)
    return path


def test_jpeg_is_drafted_then_resized_to_the_bound(big_jpeg, monkeypatch):
    drafts = []
    real_draft = JpegImageFile.draft
    monkeypatch.setattr(JpegImageFile, "draft", lambda self, *a: drafts.append(a) or real_draft(self, *a))
    out = load_image_reduced(big_jpeg, 300)
    assert out.mode == "RGB" and out.size == (225, 300)  # EXIF-rotated portrait, longer side = bound
    assert drafts and drafts[0][0] == "RGB"  # the decoder was asked for a reduced scale
    full = load_image(big_jpeg).resize(out.size, Image.BICUBIC, reducing_gap=2.0)
    assert np.abs(np.asarray(out, float) - np.asarray(full, float)).mean() < 3  # same picture, within JPEG noise


def test_small_images_bytes_and_pngs(big_jpeg, tmp_path):
    assert load_image_reduced(big_jpeg, 5000).size == load_image(big_jpeg).size  # already within the bound
    data = big_jpeg.read_bytes()
    assert load_image_reduced(data, 400).size == (300, 400)
    png = tmp_path / "x.png"
    Image.new("RGB", (900, 300), (10, 20, 30)).save(png)
    out = load_image_reduced(png, 450)
    assert out.size == (450, 150) and out.getpixel((5, 5)) == (10, 20, 30)
    with pytest.raises(ImageDecodeError):
        load_image_reduced(io.BytesIO(b"not an image").getvalue(), 100)
    with pytest.raises(ValueError, match="max_side"):
        load_image_reduced(png, 0)
