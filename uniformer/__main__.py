"""Command line: ``python -m uniformer {predict,detect,list,download,convert,train} ...``.

    python -m uniformer predict photo.jpg [more.jpg ...] [--model NAME] [--topk 5] [--json]
    python -m uniformer predict clip.mp4 [--model uniformer_small_k400_16x8] [--views 4x1] [--json]
    python -m uniformer list [PATTERN]
    python -m uniformer download NAME_OR_PATTERN... [--dry-run] [--json]
    python -m uniformer export NAME --format onnx OUT.onnx [--checkpoint PATH] [--input-size 3x224x224]
    python -m uniformer convert TRAINING_CKPT.pth OUT.pth --trust-source
    python -m uniformer train --data digits --epochs 30 --output runs/digits --export
    torchrun --nproc_per_node 2 -m uniformer train ...      (the same run on 2 processes)
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]

DEFAULT_MODEL = "uniformer_small_in1k"
DEFAULT_VIDEO_MODEL = "uniformer_small_k400_16x8"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uniformer", description="UniFormer models from the command line.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="classify images (ImageNet-1k) or videos (Kinetics, Something-Something)")
    pr.add_argument("images", nargs="+", metavar="FILE",
                    help="image files (JPEG, PNG, WebP, TIFF, ...) and/or video files (MP4, MKV, WebM, MOV, AVI, ...)")
    pr.add_argument("--model", default=None,
                    help=f"registered model name; it serves the inputs of its kind, the others get the default "
                         f"(images {DEFAULT_MODEL}, videos {DEFAULT_VIDEO_MODEL})")
    pr.add_argument("--views", default=None, metavar="CLIPSxCROPS",
                    help="video test views, e.g. 4x1 (4 clips, 1 crop) or 1x3 (default: the model's official views)")
    pr.add_argument("--topk", type=int, default=5, help="number of classes to print (default 5)")
    pr.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    pr.add_argument("--checkpoint", default=None,
                    help="local checkpoint file instead of the download by name (Hub, else Google Drive)")
    pr.add_argument("--untrained", action="store_true",
                    help="run with random weights when no checkpoint is given (predictions are meaningless)")
    pr.add_argument("--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, cuda:1, ...")
    pr.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                    help="autocast precision (fp16 needs CUDA)")
    pr.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime"),
                    help="auto (default: the fastest faithful path measured for this device, see "
                         "uniformer.runtime.select), torch (eager) or onnxruntime (exported once per input size)")

    ex = sub.add_parser("export", help="export a model for deployment (ONNX, dynamic batch)")
    ex.add_argument("model", help="registered model name")
    ex.add_argument("out", help="output file, e.g. model.onnx")
    ex.add_argument("--format", default="onnx", choices=("onnx",), help="export format (onnx)")
    ex.add_argument("--input-size", default=None, metavar="CxHxW",
                    help="input size without the batch, e.g. 3x224x224 or 3x16x224x224 (default: the model's)")
    ex.add_argument("--checkpoint", default=None, help="local checkpoint file instead of the Hub download")
    ex.add_argument("--untrained", action="store_true", help="export random weights (for testing a deployment)")

    dt = sub.add_parser("detect", help="detect and segment objects (COCO 80 classes) with Mask R-CNN / Cascade")
    dt.add_argument("images", nargs="+", metavar="FILE", help="image files")
    dt.add_argument("--model", default="mask_rcnn_1x_hybrid_small", help="registered detection model")
    dt.add_argument("--checkpoint", default=None,
                    help="official mmdet checkpoint file (default: the official Google Drive file, downloaded by name)")
    dt.add_argument("--untrained", action="store_true",
                    help="run with random weights when no checkpoint is given (detections are meaningless)")
    dt.add_argument("--score-thr", type=float, default=0.3, help="keep detections scoring at least this (0.3)")
    dt.add_argument("--short-side", type=int, default=800,
                    help="test resize: short side <= this, long side <= 5/3 of it (official 800, i.e. 1333x800)")
    dt.add_argument("--out", default=None, metavar="DIR",
                    help="write <name>_detections.png (drawing) and <name>_detections.json (COCO results) here")
    dt.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    dt.add_argument("--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, ...")
    dt.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast precision")

    ls = sub.add_parser("list", help="list registered models")
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'uniformer_small*'")

    _add_download_parser(sub)

    cv = sub.add_parser("convert", help="extract the weights of a training checkpoint that safe loading refuses")
    cv.add_argument("src")
    cv.add_argument("dst")
    cv.add_argument("--trust-source", action="store_true", required=True,
                    help="required: the file is unpickled unsafely (it can run code), so only for files you trust")

    tr = sub.add_parser("train", help="train / fine-tune a model (also under torchrun --nproc_per_node N)",
                        description="Train a registered model on an image folder, a CSV video list or a built-in "
                                    "dataset (digits, moving_digits). Defaults follow the paper's recipe (§6.1).")
    _add_train_arguments(tr)
    return p


def _add_download_parser(sub) -> None:
    dl = sub.add_parser("download", help="fetch official checkpoints by name (Hugging Face Hub, else Google Drive)",
                        description="For each name (or glob pattern, e.g. 'mask_rcnn_*'): where its official weights "
                                    "come from and where they are (or would be) cached; without --dry-run they are "
                                    "downloaded, so that later runs need no network. Drive files go to "
                                    "$UNIFORMER_CACHE (default ~/.cache/uniformer), Hub files to the Hugging Face cache.")
    dl.add_argument("names", nargs="+", metavar="NAME", help="registered model names or glob patterns")
    dl.add_argument("--dry-run", action="store_true", help="only say where each file comes from and would go")
    dl.add_argument("--json", action="store_true", help="print a JSON list (name, source, hub_repo_id, hub_filename, "
                                                        "drive_file_id, path, ...) instead of text")


def _download(args) -> int:
    """``download``: every name resolved first (unknown names fail before anything is fetched), then
    each fetched in turn; a failed name does not stop the others (exit status 1)."""
    from . import list_models
    from .downloads import download_weights, weights_status
    from .hub import CheckpointError
    from .registry import get_entry

    names: list[str] = []
    for item in args.names:
        if any(c in item for c in "*?["):
            matched = list_models(item)
            if not matched:
                raise KeyError(f"no registered model matches {item!r} (python -m uniformer list)")
            names += matched
        else:
            names.append(get_entry(item).name)
    names = list(dict.fromkeys(names))
    results, failures = [], 0
    for name in names:
        status = weights_status(name)
        if args.dry_run:
            status["status"] = "cached" if status["cached"] else (
                "not released" if status["source"] == "unreleased" else "would download")
        elif status["cached"]:
            status["status"] = "cached"
        else:
            try:
                download_weights(name)
                status = {**weights_status(name), "status": "downloaded"}
            except CheckpointError as e:
                failures += 1
                status["status"], status["error"] = "failed", f"{type(e).__name__}: {e}"
        results.append(status)
        if not args.json:
            print(f"{name}  [{status['source']}]  {status['describe']}")
            where = {"would download": "to", "failed": "(it would go to"}.get(status["status"], "at")
            path = f" {where} {status['path']}{')' if where.startswith('(') else ''}" if status["path"] else ""
            print(f"    {status['status']}{path}")
            if "error" in status:
                print(f"    error: {status['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failures else 0


def _list(args) -> int:
    from . import get_entry, list_models
    from .downloads import weights_source

    for name in list_models(args.pattern):
        e, src = get_entry(name), weights_source(name)
        where = {"hub": e.pretrained.hub, "drive": src.drive_url, "inside": "inside " + ", ".join(src.holders),
                 "unreleased": "not released", "project": "in the package (project-trained)"}[src.source]
        print(f"{name:36s} {src.source:10s} {e.description:55s} {where}")
    return 0


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (``--field-name``), defaults and help from the config."""
    import dataclasses

    from .train.config import TrainConfig

    helps = {
        "model": "registered model name (python -m uniformer list)", "data": "digits, moving_digits, an image "
        "folder (one sub-folder per class) or a CSV video list (path,label)", "val_data": "held-out folder / CSV",
        "output_dir": "folder for checkpoint-last.pt, metrics.jsonl and export/",
        "resume": "a training checkpoint, or 'auto' (OUTPUT/checkpoint-last.pt if present)",
        "freeze": "backbone: train the classifier only (linear probe)", "batch_size": "global batch per step",
        "input_size": "square input side in pixels (default: the model's)", "export": "write OUTPUT/export "
        "(safetensors + config.json + README.md model card)", "max_steps": "stop after this many steps "
        "(the schedule spans them)", "precision": "auto: bf16 on GPU, fp32 on CPU",
    }
    types = {"int": int, "float": float, "str": str}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "") + (f" (default {default})" if default not in (None, "") else "")
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", action="append", default=[], metavar="KEY=VALUE",
                           help="override a model config field; VALUE is JSON (e.g. spatial_dims=3, "
                                "depths=[1,1,2,1]); repeatable")
        elif f.name == "betas":
            p.add_argument(flag, type=float, nargs=2, default=default, help="AdamW betas" + text)
        elif f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            kind = types[f.type.split(" | ")[0]]
            names = [flag, "--output"] if f.name == "output_dir" else [flag]
            p.add_argument(*names, dest=f.name, type=kind, default=default, help=text)
    p.add_argument("--push-to-hub", metavar="USER/NAME", default=None,
                   help="upload the export to this Hugging Face model repo (needs --export, a network and a token)")
    p.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")


def _train(args, argv: list[str]) -> int:
    import dataclasses
    import os
    import shlex

    from .train import TrainConfig, fit, push_to_hub

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    model_args = {}
    for item in values["model_args"]:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg needs KEY=VALUE, got {item!r}")
        try:
            model_args[key] = json.loads(raw)
        except json.JSONDecodeError:
            model_args[key] = raw
    values["model_args"] = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                            for k, v in model_args.items()}
    values["betas"] = tuple(values["betas"])
    if args.push_to_hub and not values["export"]:
        raise ValueError("--push-to-hub needs --export")
    cfg = TrainConfig(**values)
    world = int(os.environ.get("WORLD_SIZE", 1))
    launcher = f"torchrun --nproc_per_node {world} -m uniformer" if world > 1 else "python -m uniformer"
    result = fit(cfg, command=f"{launcher} {shlex.join(argv)}")
    if int(os.environ.get("RANK", 0)) == 0:
        m = result.metrics
        if "val_top1" in m:
            print(f"held-out top-1 {m['val_top1']:.2f}% top-5 {m['val_top5']:.2f}% on {m['val_samples']} samples "
                  f"after {result.state.step} steps")
        if result.export_dir is not None:
            print(f"exported to {result.export_dir}")
            if args.push_to_hub:
                url = push_to_hub(result.export_dir, args.push_to_hub, private=args.hub_private)
                print(f"pushed to {url}")
    return 0


def _is_video(path: str) -> bool:
    """Video by extension; for unknown extensions, a file PyAV reads as a multi-frame video."""
    from pathlib import Path

    from PIL import Image

    from .data.video import VIDEO_EXTENSIONS, is_video_file

    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix in Image.registered_extensions():
        return False
    return is_video_file(path)


def _load(name: str, args, own: bool):
    """The model ``name``; ``own``: the one --model / --checkpoint / --untrained talk about."""
    from . import create_model

    runtime = getattr(args, "runtime", "torch")
    runtime = "torch" if runtime == "auto" else runtime  # auto: chosen per prediction (_predict_images)
    if own and args.checkpoint:
        model = create_model(name, checkpoint_path=args.checkpoint, runtime=runtime)
    elif args.untrained:
        model = create_model(name, runtime=runtime)
    else:
        model = create_model(name, pretrained=True, runtime=runtime)
    if not model.weights_info.trained:
        print(f"WARNING: {name} runs with untrained random weights: predictions are meaningless. "
              f"Pass --checkpoint PATH or allow the Hub download.", file=sys.stderr)
    return model


def _predict(args) -> int:
    from . import get_entry
    from .inference import select_device

    videos = [p for p in args.images if _is_video(p)]
    images = [p for p in args.images if p not in videos]
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
        from .inference_video import Views

        views = Views.parse(args.views)
    device = select_device(args.device)
    results, lines, failures = [], [], 0
    if images:
        failures += _predict_images(args, images, _load(image_model, args, not own_video), device, results, lines)
    if videos:
        failures += _predict_videos(args, videos, _load(video_model, args, own_video), views, device, results, lines)
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines))
    return 1 if failures else 0


def _predict_images(args, paths, model, device, results, lines) -> int:
    from .data import ImageDecodeError
    from .inference import predict_images

    failures = 0
    out = []
    run, precision, path_line = model, args.precision, ""
    if getattr(args, "runtime", "torch") == "auto":  # the fastest faithful path (uniformer.runtime.select)
        from .runtime.select import fastest

        run, choice = fastest(model, device, args.precision)
        precision, path_line = choice.precision, f"  path: {choice.describe()}"
    for path in paths:
        try:
            out.append(predict_images(run, [path], topk=args.topk, device=device, precision=precision,
                                      sources=[path])[0])
        except ImageDecodeError as e:
            failures += 1
            print(f"error: {path}: {e}", file=sys.stderr)
    results += [r.to_dict() for r in out]
    lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}"
                 f"{path_line}")
    for r in out:
        lines.append(f"\n{r.source}  ({r.inference_ms:.1f} ms)")
        lines += [f"  {c.probability * 100:6.2f}%  {c.label}  [{c.index}]" for c in r.topk]
    return failures


def _predict_videos(args, paths, model, views, device, results, lines) -> int:
    from .data.video import VideoDecodeError
    from .inference_video import official_views, predict_video

    cfg = model.pretrained_cfg
    views = views or official_views(cfg)
    failures = 0
    out = []
    for path in paths:
        try:
            out.append(predict_video(model, path, views, topk=args.topk, device=device, precision=args.precision))
        except VideoDecodeError as e:
            failures += 1
            print(f"error: {path}: {e}", file=sys.stderr)
    results += [r.to_dict() for r in out]
    if lines:
        lines.append("")
    lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}")
    lines.append(f"sampling: {cfg.describe_sampling()}; views: {views.label()} ({views.paper(cfg.num_frames)}); "
                 f"short side {cfg.test_short_side(views.crops)} px, crop {cfg.crop_size} px; "
                 f"normalization mean {cfg.mean[0]} std {cfg.std[0]} (the training statistics)")
    for r in out:
        v = r.video
        lines.append(f"\n{r.source}  ({v['num_frames']} frames, {v['fps']:.2f} fps, {v['duration_s']:.1f} s, "
                     f"{v['width']}x{v['height']})  decode {r.decode_ms:.1f} ms, inference {r.inference_ms:.1f} ms")
        lines += [f"  {c.probability * 100:6.2f}%  {c.label}  [{c.index}]" for c in r.topk]
        for view in r.views:
            lines.append(f"    clip {view.clip + 1} crop {view.crop + 1}: frames {list(view.frame_indices)} -> "
                         f"{view.top1.label} {view.top1.probability * 100:.1f}%")
        lines += [f"  note: {note}" for note in r.notes]
    return failures


def _detect(args) -> int:
    from pathlib import Path

    from .data import ImageDecodeError, load_image
    from .inference import select_device
    from .tasks.detection import detect_objects, draw_detections

    if args.model not in _detection_models():
        raise ValueError(f"{args.model!r} is not a detection model; choose one of {sorted(_detection_models())}")
    from .hub import CheckpointNotAvailableError

    try:
        model = _load(args.model, args, True)  # without --checkpoint: the official file, downloaded by name
    except CheckpointNotAvailableError as e:
        raise CheckpointNotAvailableError(f"{e} (or pass --untrained to try the pipeline with random weights)") from e
    device = select_device(args.device)
    short = int(args.short_side)
    scale = (round(short * 1333 / 800), short)
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    results, lines, failures = [], [], 0
    lines.append(f"model: {model.model_name}  weights: {model.weights_info.describe()}  device: {device}")
    for path in args.images:
        try:
            image = load_image(path)
            res = detect_objects(model, image, score_thr=min(args.score_thr, 0.05), scale=scale, device=device,
                                 precision=args.precision)
        except ImageDecodeError as e:
            failures += 1
            print(f"error: {path}: {e}", file=sys.stderr)
            continue
        coco = res.to_coco(score_thr=args.score_thr, with_masks=out_dir is not None)
        summary = {**res.to_dict(), "source": str(path),
                   "detections": res.to_coco(score_thr=args.score_thr, with_masks=False)}
        results.append(summary)
        lines.append(f"\n{path}  ({res.input_size[0]}x{res.input_size[1]} input, {res.total_ms():.0f} ms, "
                     f"{len(coco)} detections >= {args.score_thr})")
        lines += [f"  {d['score']:.3f}  {d['category_name']:<16} box x={d['bbox'][0]:.1f} y={d['bbox'][1]:.1f} "
                  f"w={d['bbox'][2]:.1f} h={d['bbox'][3]:.1f}" for d in summary["detections"]]
        if out_dir:
            stem = Path(path).stem
            draw_detections(image, res, args.score_thr).save(out_dir / f"{stem}_detections.png")
            (out_dir / f"{stem}_detections.json").write_text(json.dumps(coco))
            lines.append(f"  wrote {out_dir / (stem + '_detections.png')} and {stem}_detections.json")
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines))
    return 1 if failures else 0


def _detection_models() -> list[str]:
    from . import list_models

    return list_models(task="object-detection")


def _convert(args) -> int:
    import torch

    from .hub import unwrap_state_dict

    obj = torch.load(args.src, map_location="cpu", weights_only=False)  # explicit, user-confirmed opt-in
    state_dict = unwrap_state_dict(obj, args.src)
    torch.save(state_dict, args.dst)
    print(f"wrote {len(state_dict)} tensors to {args.dst}")
    return 0


def _export(args) -> int:
    import shutil
    from pathlib import Path

    from .runtime import with_runtime

    model = _load(args.model, args, True)
    size = args.input_size or "x".join(map(str, model.pretrained_cfg.input_size))
    try:
        shape = tuple(int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input-size must look like 3x224x224, got {size!r}") from None
    cached = with_runtime(model, "onnxruntime").onnx_path(shape)  # exported once, then from the cache
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB): input 'x' (B, {', '.join(map(str, shape))}), "
          f"batch dynamic; run it with onnxruntime.InferenceSession")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 some input failed, 2 usage or loading error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args)
    from .hub import CheckpointError

    try:
        if args.command == "download":
            return _download(args)
        if args.command == "train":
            return _train(args, argv)
        if args.command == "detect":
            return _detect(args)
        if args.command == "export":
            return _export(args)
        return _predict(args) if args.command == "predict" else _convert(args)
    except (CheckpointError, KeyError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
