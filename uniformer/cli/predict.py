"""``predict``: classify images (ImageNet-1k) and videos (Kinetics, Something-Something)."""
from __future__ import annotations

from pathlib import Path

from .common import add_model_options, expand_inputs, load_model, progress
from .output import Report

DEFAULT_MODEL = "uniformer_small_in1k"
DEFAULT_VIDEO_MODEL = "uniformer_small_k400_16x8"


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    pr = sub.add_parser("predict", help="classify images (ImageNet-1k) or videos (Kinetics, Something-Something)")
    pr.add_argument("images", nargs="+", metavar="FILE",
                    help="image files (JPEG, PNG, WebP, TIFF, ...), video files (MP4, MKV, WebM, MOV, AVI, ...) "
                         "or folders of them")
    pr.add_argument("--model", default=None,
                    help=f"registered model name; it serves the inputs of its kind, the others get the default "
                         f"(images {DEFAULT_MODEL}, videos {DEFAULT_VIDEO_MODEL})")
    pr.add_argument("--views", default=None, metavar="CLIPSxCROPS",
                    help="video test views, e.g. 4x1 (4 clips, 1 crop) or 1x3 (default: the model's official views)")
    pr.add_argument("--topk", type=int, default=5, help="number of classes to print (default 5)")
    pr.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    add_model_options(pr, None, "classification")
    pr.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime"),
                    help="auto (default: the fastest faithful path measured for this device, see "
                         "uniformer.runtime.select), torch (eager) or onnxruntime (exported once per input size)")


def _load_runtime(runtime: str) -> str:
    """The runtime a model is built with: ``auto`` builds the eager model and chooses its path per
    prediction (:func:`_predict_images`)."""
    return "torch" if runtime == "auto" else runtime


def is_video(path: str) -> bool:
    """Video by extension; for unknown extensions, a file PyAV reads as a multi-frame video."""
    from PIL import Image

    from ..data.video import VIDEO_EXTENSIONS, is_video_file

    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix in Image.registered_extensions():
        return False
    return is_video_file(path)


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from .. import get_entry
    from ..data.video import VIDEO_EXTENSIONS
    from ..inference import select_device
    from .common import IMAGE_SUFFIXES

    files = expand_inputs(args.images, IMAGE_SUFFIXES + tuple(VIDEO_EXTENSIONS))
    videos = [p for p in files if is_video(p)]
    images = [p for p in files if p not in videos]
    image_model, video_model = DEFAULT_MODEL, DEFAULT_VIDEO_MODEL
    if args.model is not None:
        if get_entry(args.model).task == "video-classification":
            video_model = args.model
        else:
            image_model = args.model
    # --checkpoint belongs to --model, or (without --model) to the default of the only kind given
    own_video = args.model == video_model or (args.model is None and not images)
    views = None
    if videos and args.views:
        from ..inference_video import Views

        views = Views.parse(args.views)
    device = select_device(args.device)
    report = Report(data=[])
    if images:
        model = load_model(image_model, args, report, own=not own_video, runtime=_load_runtime(args.runtime))
        report.extend(_predict_images(args, images, model, device, report.data))
    if videos:
        model = load_model(video_model, args, report, own=own_video, runtime=_load_runtime(args.runtime))
        report.extend(_predict_videos(args, videos, model, views, device, report.data))
    return report


def _predict_images(args, paths, model, device, results: list) -> Report:
    from ..data import ImageDecodeError
    from ..inference import predict_images

    rep = Report()
    out = []
    run, precision, path_line = model, args.precision, ""
    if args.runtime == "auto":  # the fastest faithful path (uniformer.runtime.select)
        from ..runtime.select import fastest

        run, choice = fastest(model, device, args.precision)
        precision, path_line = choice.precision, f"  path: {choice.describe()}"
    for path in progress(paths, "images"):
        try:
            out.append(predict_images(run, [path], topk=args.topk, device=device, precision=precision,
                                      sources=[path])[0])
        except ImageDecodeError as e:
            rep.errors.append(f"{path}: {e}")
    results += [r.to_dict() for r in out]
    rep.lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}"
                     f"{path_line}")
    for r in out:
        rep.lines.append(f"\n{r.source}  ({r.inference_ms:.1f} ms)")
        rep.lines += [f"  {c.probability * 100:6.2f}%  {c.label}  [{c.index}]" for c in r.topk]
    return rep


def _predict_videos(args, paths, model, views, device, results: list) -> Report:
    from ..data.video import VideoDecodeError
    from ..inference_video import official_views, predict_video

    cfg = model.pretrained_cfg
    views = views or official_views(cfg)
    rep = Report()
    out = []
    for path in progress(paths, "videos"):
        try:
            out.append(predict_video(model, path, views, topk=args.topk, device=device, precision=args.precision))
        except VideoDecodeError as e:
            rep.errors.append(f"{path}: {e}")
    results += [r.to_dict() for r in out]
    rep.lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}")
    rep.lines.append(f"sampling: {cfg.describe_sampling()}; views: {views.label()} ({views.paper(cfg.num_frames)}); "
                     f"short side {cfg.test_short_side(views.crops)} px, crop {cfg.crop_size} px; "
                     f"normalization mean {cfg.mean[0]} std {cfg.std[0]} (the training statistics)")
    for r in out:
        v = r.video
        rep.lines.append(f"\n{r.source}  ({v['num_frames']} frames, {v['fps']:.2f} fps, {v['duration_s']:.1f} s, "
                         f"{v['width']}x{v['height']})  decode {r.decode_ms:.1f} ms, inference {r.inference_ms:.1f} ms")
        rep.lines += [f"  {c.probability * 100:6.2f}%  {c.label}  [{c.index}]" for c in r.topk]
        for view in r.views:
            rep.lines.append(f"    clip {view.clip + 1} crop {view.crop + 1}: frames {list(view.frame_indices)} -> "
                             f"{view.top1.label} {view.top1.probability * 100:.1f}%")
        rep.lines += [f"  note: {note}" for note in r.notes]
    return rep
