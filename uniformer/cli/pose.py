"""``pose``: COCO 17-keypoint human pose (top-down) in given person boxes."""
from __future__ import annotations

from .common import add_model_options, add_output_options, output_stems, progress, task_setup
from .output import Report

DEFAULT_MODEL = "top_down_256x192_global_small"


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    ps = sub.add_parser("pose", help="estimate human pose (COCO 17 keypoints) in person boxes",
                        description="Top-down pose: each person box (default: the whole image) is cropped, "
                                    "resized and run with the flip test. Without --checkpoint the official weights "
                                    "are looked up by name; offline and not cached, the model runs with untrained "
                                    "random weights and says so.")
    ps.add_argument("images", nargs="+", metavar="FILE", help="image files or folders of them")
    add_model_options(ps, DEFAULT_MODEL, "pose")
    ps.add_argument("--boxes", default=None, metavar="'x,y,w,h; ...'",
                    help="person boxes in image pixels, ';'-separated (default: the whole image); the same "
                         "for every image")
    ps.add_argument("--no-flip", action="store_true", help="skip the flip test (the official test uses it)")
    ps.add_argument("--score-thr", type=float, default=0.0, help="joints drawn when scoring at least this")
    add_output_options(ps, "write DIR/<name>/pose.png (skeletons) and keypoints.json for each image")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from ..data import ImageDecodeError, load_image
    from ..tasks.pose import estimate_pose, parse_boxes

    report = Report(data=[])
    files, model, device, out_dir = task_setup(args, "pose-estimation", "pose", report, fallback=True)
    for path, stem in zip(progress(files, "pose"), output_stems(files)):
        try:
            image = load_image(path)
            boxes = parse_boxes(args.boxes, image.size) if args.boxes else None
            res = estimate_pose(model, image, boxes, flip_test=False if args.no_flip else None, device=device,
                                precision=args.precision)
        except (ImageDecodeError, ValueError) as e:
            report.errors.append(f"{path}: {e}")
            continue
        summary = {"source": str(path), **res.to_dict()}
        report.data.append(summary)
        report.lines.append(f"\n{path}  ({len(res.persons)} person(s), input {res.input_size[0]}x{res.input_size[1]}, "
                            f"flip test {'on' if res.flip_test else 'off'}, {res.inference_ms:.0f} ms)")
        for i, person in enumerate(res.persons):
            x, y, w, h = person.box
            report.lines.append(f"  person {i + 1}: box x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f}, "
                                f"mean joint score {person.score:.3f}")
            report.lines += [f"    {name:<16} x={kx:7.1f} y={ky:7.1f}  {s:.3f}"
                             for name, (kx, ky), s in zip(res.keypoint_info.names, person.keypoints, person.scores)]
        if out_dir:
            paths = res.save(out_dir / stem, res.draw(image, score_threshold=args.score_thr))
            summary["outputs"] = [str(p) for p in paths]
            report.lines.append(f"  wrote {', '.join(map(str, paths))}")
    return report
