"""Example photos for the demo: real, permissively licensed images that ship inside scikit-image and
scikit-learn, so the app needs no download and no image files in the repository."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

__all__ = ["EXAMPLE_FILES", "EXAMPLES_CREDIT", "write_examples"]

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


def write_examples(directory: str | Path = DEFAULT_DIR) -> dict[str, Path]:
    """Copy the example files out of their packages into ``directory`` (created if needed; existing
    copies are reused) -> {name: path}, in gallery order. A package that is not installed or lacks
    the file is skipped. The default folder is in the system temp directory, where Gradio may serve
    files from."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, package, relative in EXAMPLE_FILES:
        spec = importlib.util.find_spec(package)
        source = Path(spec.origin).parent / relative if spec and spec.origin else None
        if source is None or not source.is_file():
            continue
        target = directory / f"{name}{source.suffix}"
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
        written[name] = target
    return written
