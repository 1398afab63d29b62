"""Video files for the tests, written with PyAV: every frame shows its own index, so a test can
decode any frame and read back which one it got; plus the bad files users upload.

Pattern: the rows between 10 % and 90 % of the height are cut into ``BITS`` horizontal bands, band
k white when bit k (most significant first) of the frame index is set, black otherwise; a white
square in the top-left corner marks the stored orientation (for rotation tests).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 11  # frame indices up to 2047


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """The (height, width, 3) uint8 picture of frame ``index``."""
    img = np.zeros((height, width, 3), np.uint8)
    top, band = int(0.1 * height), 0.8 * height / BITS
    for k in range(BITS):
        if index >> (BITS - 1 - k) & 1:
            img[top + int(round(k * band)):top + int(round((k + 1) * band))] = 255
    img[:max(2, height // 12), :max(2, width // 12)] = 255  # orientation marker (inside the top 10 %)
    img[: int(0.1 * height), max(2, width // 12):] = 60  # grey border row so the marker stands out
    return img


def read_index(frame: np.ndarray) -> int:
    """The index drawn in ``frame`` ((H, W, 3) uint8 or (3, H, W) float in [0, 1]) by :func:`pattern`."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = np.moveaxis(frame, 0, -1) * 255.0
    height = frame.shape[0]
    top, band = 0.1 * height, 0.8 * height / BITS
    value = 0
    for k in range(BITS):
        y0, y1 = top + k * band, top + (k + 1) * band
        rows = frame[int(round(y0 + 0.3 * band)):int(round(y1 - 0.3 * band)) + 1]
        value = value << 1 | int(rows.mean() > 127.5)
    return value


def write_indexed_video(path: Path, num_frames: int, fps: float | Fraction = 25, size: tuple[int, int] = (160, 96),
                        pts: list[int] | None = None, time_base: Fraction | None = None, rotation: int = 0,
                        gop: int = 12, audio: bool = False) -> Path:
    """An H.264 video (container from the suffix: .mp4, .mkv, ...) of ``num_frames`` frames showing
    their index. ``pts`` (in ``time_base``) gives every frame its own timestamp (variable frame
    rate); otherwise frames are 1 / fps apart. ``rotation``: display-matrix rotation (degrees
    counter-clockwise), frames stored unrotated. ``gop``: keyframe interval (B-frames on).
    ``audio``: add a silent AAC track."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast", "g": str(gop), "bf": "2", "sc_threshold": "0"}
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        astream = container.add_stream("aac", rate=16000) if audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            samples = int(16000 * num_frames / float(fps))
            for start in range(0, samples, 1024):
                chunk = np.zeros((1, min(1024, samples - start)), np.float32)
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = 16000, start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """A file with one AAC audio stream and no video (named as the caller likes, e.g. .mp4)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        t = np.arange(samples, dtype=np.float32) / 16000
        tone = (0.1 * np.sin(2 * np.pi * 440 * t)).reshape(1, -1)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_bad_videos(directory: Path) -> dict[str, Path]:
    """Files that are not usable videos -> {kind: path}: 'empty' (0 bytes), 'text' (a text file named
    .mp4), 'garbage' (random bytes named .mp4), 'truncated' (the first 40 % of an MP4 whose index
    sits at the end), 'audio' (audio only, named .mp4), 'still' (a PNG image named .mp4)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    files = {"empty": directory / "empty.mp4", "text": directory / "notes.mp4", "garbage": directory / "garbage.mp4",
             "truncated": directory / "truncated.mp4", "audio": directory / "song.mp4",
             "still": directory / "photo.mp4"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are my notes, not a video\n" * 20)
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    whole = write_indexed_video(directory / "whole.mp4", 24)
    data = whole.read_bytes()
    files["truncated"].write_bytes(data[: int(len(data) * 0.4)])
    write_audio_only(files["audio"])
    Image.fromarray(pattern(3, 64, 48)).save(files["still"], format="PNG")
    return files
