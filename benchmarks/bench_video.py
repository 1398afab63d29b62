"""Video benchmark: decoding + sampling a 10 s 1280x720 clip (PyAV seeking vs decoding everything) and
the CPU inference time of one clip for UniFormer-S 16x8 and UniFormer-XXS 16 (paper Table 12's model).

    python benchmarks/bench_video.py            # 3 repetitions, medians
    python benchmarks/bench_video.py --quick    # 1 repetition (a smoke run, a few minutes on 2 cores)

The clip is generated with PyAV (H.264, 25 fps, a keyframe every 2 s as streaming services use, B-frames
on; moving texture so it does not compress to nothing). Settings: UniFormer-S 16x8 with its official
4 clips x 1 crop and with 1 clip, and UniFormer-XXS 16 (1 uniform clip). Three ways to get the views
(``load_clips``: probe, sample, decode, resize the short side, crop, normalize):

* seek        -- our decoder: seek to the keyframe before each clip, convert only the sampled frames;
* sequential  -- the same without seeking: decode from the start up to the last sampled frame;
* decode-all  -- the common naive way: decode and convert every frame of the video to RGB, then index.

Besides time, the table gives the frame memory each way holds: ours keeps only the sampled frames,
already resized (float32 at the test short side); decode-all holds every frame at full resolution
(uint8), which grows with the video's length and resolution.

Ratios are measured in the same run on the same file. Model timings: weights untrained (the speed
does not depend on them), float32, batch 1, one view, ``torch.inference_mode``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uniformer  # noqa: E402  (before anything imports torchvision)
from uniformer.data.video import normalize, probe_video, resize_short_side, sample_clips, spatial_crops  # noqa: E402
from uniformer.inference_video import Views, load_clips  # noqa: E402


def make_clip(path: Path, seconds: float = 10.0, size=(1280, 720), fps: int = 25, gop: int = 50) -> Path:
    """A ``seconds`` long H.264 MP4 of moving texture and a frame counter bar."""
    import av

    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(gop), "bf": "2"}
        for i in range(int(seconds * fps)):
            img = np.roll(texture, 4 * i, axis=1)
            img[..., 0] = ((xx + 3 * i) % 256).astype(np.uint8)  # a moving ramp in the red channel
            img[: h // 20, : int(w * i / (seconds * fps))] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_all_then_sample(path: Path, cfg, views: Views) -> torch.Tensor:
    """The naive baseline: every frame decoded and converted to RGB, then the views taken."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])  # (N, H, W, 3) uint8
    clips = sample_clips(len(frames), cfg.sampling, cfg.num_frames, views.clips, cfg.sampling_rate)
    out = []
    for idx in clips:
        x = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
        x = resize_short_side(x, cfg.test_short_side(views.crops)).transpose(0, 1)  # (3, T, h, w)
        out += [normalize(c, cfg.mean, cfg.std) for c in spatial_crops(x, cfg.crop_size, views.crops)]
    return torch.stack(out)


def timed(fn, repeats: int) -> tuple[float, object]:
    """(median wall time in ms, last result)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


@torch.inference_mode()
def model_ms(name: str, repeats: int) -> tuple[float, tuple[int, ...]]:
    model = uniformer.create_model(name)
    shape = (1,) + tuple(model.pretrained_cfg.input_size)
    x = torch.randn(shape)
    model(x)  # warm-up (allocations, oneDNN primitives)
    ms, _ = timed(lambda: model(x), repeats)
    return ms, shape


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 repetition instead of 3")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, repetitions: {repeats} (medians)")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clip = make_clip(Path(tmp) / "clip_720p_10s.mp4")
        info = probe_video(clip)
        print(f"clip: {info.width}x{info.height}, {info.num_frames} frames, {info.fps:.0f} fps, "
              f"{info.duration_s:.0f} s, "
              f"{len(info.keyframes)} keyframes, {clip.stat().st_size / 1e6:.1f} MB (generated in "
              f"{time.perf_counter() - t0:.1f} s)")
        print("\ndecode + sample (probe, sample, decode, resize, crop, normalize: everything before the model)")
        print(f"{'model, views (sampling)':40s} {'seek':>9s} {'sequential':>11s} {'decode-all':>11s} {'all/seek':>9s}"
              f"  frames decoded (seek / seq / all)  frames held: ours / decode-all")
        for short, name, views in (("S-16x8", "uniformer_small_k400_16x8", Views(4, 1)),
                                   ("S-16x8", "uniformer_small_k400_16x8", Views(1, 1)),
                                   ("XXS-16", "uniformer_xxs16_160_k400", Views(1, 1))):
            cfg = uniformer.get_entry(name).pretrained
            seek_ms, seek = timed(lambda: load_clips(clip, cfg, views, seek=True), repeats)
            seq_ms, seq = timed(lambda: load_clips(clip, cfg, views, seek=False), repeats)
            all_ms, full = timed(lambda: decode_all_then_sample(clip, cfg, views), repeats)
            assert torch.allclose(seek.views, seq.views) and torch.allclose(seek.views, full, atol=1e-5)
            label = f"{short}, {views.label()} ({'dense' if cfg.sampling == 'dense' else 'uniform'})"
            held = sum(f.numel() * f.element_size() for f in seek.decoded.frames.values()) / 1e6
            held_all = info.num_frames * info.width * info.height * 3 / 1e6  # every frame as RGB uint8
            print(f"{label:40s} {seek_ms:7.0f}ms {seq_ms:9.0f}ms {all_ms:9.0f}ms {all_ms / seek_ms:8.1f}x  "
                  f"{seek.decoded.decoded:>5d} / {seq.decoded.decoded} / {info.num_frames}"
                  f"{'':17s}{held:5.0f} MB / {held_all:4.0f} MB")
    print("\none clip on the CPU (float32, batch 1, untrained weights)")
    for name, label in (("uniformer_small_k400_16x8", "UniFormer-S 16 frames 224 (S-16)"),
                        ("uniformer_xxs16_160_k400", "UniFormer-XXS 16 frames 160 (XXS-16)")):
        ms, shape = model_ms(name, repeats)
        print(f"{label:40s} input {str(shape):22s} {ms:8.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
