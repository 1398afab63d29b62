"""``segment``: semantic segmentation (ADE20K, 150 classes) with UperNet / Semantic FPN."""
from __future__ import annotations

from pathlib import Path

from .common import add_model_options, expand_inputs, load_model, output_stems, progress
from .output import Report

DEFAULT_MODEL = "upernet_global_small"


def add_parser(sub) -> None:
    sg = sub.add_parser("segment", help="segment images (ADE20K, 150 classes) with UperNet / Semantic FPN",
                        description="Without --checkpoint the official weights are looked up by name; offline and "
                                    "not cached, the model runs with untrained random weights and says so.")
    sg.add_argument("images", nargs="+", metavar="FILE", help="image files or folders of them")
    add_model_options(sg, DEFAULT_MODEL, "segmentation")
    sg.add_argument("--stage3", default=None, choices=("global", "window", "hybrid"),
                    help="stage-3 attention (default: the model's own)")
    sg.add_argument("--short-side", type=int, default=512,
                    help="test resize: short side <= this, long side <= 4x it (official 512, i.e. 2048x512)")
    sg.add_argument("--opacity", type=float, default=0.6, help="class colours over the photo (0-1, default 0.6)")
    sg.add_argument("--out", default=None, metavar="DIR",
                    help="write DIR/<name>/overlay.png, mask.png (palette PNG, value = class index) and "
                         "classes.json for each image")
    sg.add_argument("--top", type=int, default=5, help="classes to print per image (largest area first; default 5)")
    sg.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def run(args) -> Report:
    from .. import list_models
    from ..data import ImageDecodeError, load_image
    from ..inference import select_device
    from ..tasks.segmentation import segment_image

    models = list_models(task="semantic-segmentation")
    if args.model not in models:
        raise ValueError(f"{args.model!r} is not a segmentation model; choose one of {models}")
    files = expand_inputs(args.images)
    report = Report(data=[])
    model = load_model(args.model, args, report, fallback=True)
    device = select_device(args.device)
    scale = (4 * int(args.short_side), int(args.short_side))
    out_dir = Path(args.out) if args.out else None
    report.lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}")
    for path, stem in zip(progress(files, "segment"), output_stems(files)):
        try:
            image = load_image(path)
            res = segment_image(model, image, stage3_attention=args.stage3, scale=scale, device=device,
                                precision=args.precision)
        except ImageDecodeError as e:
            report.errors.append(f"{path}: {e}")
            continue
        summary = {"source": str(path), **res.to_dict()}
        report.data.append(summary)
        areas = res.class_areas()
        report.lines.append(f"\n{path}  ({res.input_size[0]}x{res.input_size[1]} input, stage 3 "
                            f"{res.stage3_attention}, {res.inference_ms:.0f} ms; {len(areas)} classes)")
        report.lines += [f"  {a.fraction * 100:6.2f}%  {a.name}  [{a.index}]" for a in areas[:args.top]]
        if out_dir:
            paths = res.save(out_dir / stem, res.draw(image, opacity=args.opacity))
            summary["outputs"] = [str(p) for p in paths]
            report.lines.append(f"  wrote {', '.join(map(str, paths))}")
    return report
