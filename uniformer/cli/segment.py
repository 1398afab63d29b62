"""``segment``: semantic segmentation (ADE20K, 150 classes) with UperNet / Semantic FPN."""
from __future__ import annotations

from .common import add_model_options, add_output_options, output_stems, progress, task_setup
from .output import Report

DEFAULT_MODEL = "upernet_global_small"


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
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
    add_output_options(sg, "write DIR/<name>/overlay.png, mask.png (palette PNG, value = class index) and "
                           "classes.json for each image")
    sg.add_argument("--top", type=int, default=5, help="classes to print per image (largest area first; default 5)")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from ..data import ImageDecodeError, load_image
    from ..tasks.segmentation import segment_image, segmentation_scale

    report = Report(data=[])
    files, model, device, out_dir = task_setup(args, "semantic-segmentation", "segmentation", report, fallback=True)
    scale = segmentation_scale(int(args.short_side))
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
