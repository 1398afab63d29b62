"""``detect``: objects and their masks (COCO 80 classes) with Mask R-CNN / Cascade Mask R-CNN."""
from __future__ import annotations

import json

from .common import add_model_options, add_output_options, output_stems, progress, task_setup
from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    dt = sub.add_parser("detect", help="detect and segment objects (COCO 80 classes) with Mask R-CNN / Cascade")
    dt.add_argument("images", nargs="+", metavar="FILE", help="image files or folders of them")
    add_model_options(dt, "mask_rcnn_1x_hybrid_small", "detection")
    dt.add_argument("--score-thr", type=float, default=0.3, help="keep detections scoring at least this (0.3)")
    dt.add_argument("--short-side", type=int, default=800,
                    help="test resize: short side <= this, long side <= 5/3 of it (official 800, i.e. 1333x800)")
    add_output_options(dt, "write <name>_detections.png (drawing) and <name>_detections.json (COCO results) here")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from ..data import ImageDecodeError, load_image
    from ..hub import CheckpointNotAvailableError
    from ..tasks.detection import detect_objects, detection_scale, draw_detections

    report = Report(data=[])
    try:  # without --checkpoint: the official file, downloaded by name
        files, model, device, out_dir = task_setup(args, "object-detection", "detection", report, fallback=False)
    except CheckpointNotAvailableError as e:
        raise CheckpointNotAvailableError(f"{e} (or pass --untrained to try the pipeline with random weights)") from e
    scale = detection_scale(int(args.short_side))
    for path, stem in zip(progress(files, "detect"), output_stems(files)):
        try:
            image = load_image(path)
            res = detect_objects(model, image, score_thr=min(args.score_thr, 0.05), scale=scale, device=device,
                                 precision=args.precision)
        except ImageDecodeError as e:
            report.errors.append(f"{path}: {e}")
            continue
        coco = res.to_coco(score_thr=args.score_thr, with_masks=out_dir is not None)
        summary = {**res.to_dict(), "source": str(path),
                   "detections": res.to_coco(score_thr=args.score_thr, with_masks=False)}
        report.data.append(summary)
        report.lines.append(f"\n{path}  ({res.input_size[0]}x{res.input_size[1]} input, {res.total_ms():.0f} ms, "
                            f"{len(coco)} detections >= {args.score_thr})")
        report.lines += [f"  {d['score']:.3f}  {d['category_name']:<16} box x={d['bbox'][0]:.1f} "
                         f"y={d['bbox'][1]:.1f} w={d['bbox'][2]:.1f} h={d['bbox'][3]:.1f}"
                         for d in summary["detections"]]
        if out_dir:
            draw_detections(image, res, args.score_thr).save(out_dir / f"{stem}_detections.png")
            (out_dir / f"{stem}_detections.json").write_text(json.dumps(coco))
            summary["outputs"] = [str(out_dir / f"{stem}_detections.png"), str(out_dir / f"{stem}_detections.json")]
            report.lines.append(f"  wrote {out_dir / (stem + '_detections.png')} and {stem}_detections.json")
    return report
