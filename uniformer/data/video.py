"""Video decoding with PyAV and the frame sampling of the official UniFormer video models.

Decoding (:func:`probe_video`, :func:`read_frames`)
    A first pass demuxes the video stream's packets without decoding them: their presentation
    timestamps (pts), sorted, are the frames, so frame ``i`` is the i-th frame in display order
    whatever the frame rate does (variable frame rates, B-frames, edit lists) -- the frame index
    the official pipeline (decord) samples from. :func:`read_frames` then seeks to the keyframe
    before each run of wanted frames and decodes forward only as far as needed, converting only
    the wanted frames (one full-resolution frame alive at a time), so time and memory are bounded
    by the clips sampled, not by the length or resolution of the video. Rotation metadata (the
    display matrix, e.g. of phone videos) is applied. Files that cannot be used raise
    :class:`VideoDecodeError` with a message for users.

Sampling (docs/official.md §6; paper §6.2)
    * :func:`dense_indices` -- Kinetics (S/B models), the slowfast/decord rule with
      ``USE_OFFSET_SAMPLING``: a clip spans ``T * stride`` frames; 1 clip starts at
      floor((n - span) / 2), k clips at i * floor((n - span) / (k - 1)); the T indices are
      ``linspace(start, start + span - 1, T)`` truncated and clamped to n - 1 (short videos repeat
      their last frame at the end: never out of order).
    * :func:`segment_indices` -- Something-Something and the light models (TSN "uniform"
      sampling): seg = (n - 1) / T, frame i = round(seg * i) + int(seg / (k + 1) * (clip + 1)).

Spatial views (:func:`resize_short_side`, :func:`spatial_crops`)
    slowfast's deterministic test transform: resize the short side (bilinear,
    ``align_corners=False``, long side floored), then the centre crop (1 crop) or the
    left/centre/right (top/centre/bottom for portrait) crops (3 crops).

Tensors: frames are (N, 3, H, W) float32 in [0, 1] (RGB); a clip is (3, T, H, W); a batch of
views (V, 3, T, S, S). Times in seconds, frame rates in frames per second (fps).
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "VideoDecodeError", "VideoInfo", "DecodedFrames", "VIDEO_EXTENSIONS", "IMAGE_FORMATS", "KINETICS_MEAN",
    "KINETICS_STD",
    "is_video_file", "probe_video", "read_frames", "dense_indices", "segment_indices", "sample_clips",
    "resize_short_side", "crop_offsets", "spatial_crops", "normalize", "write_video", "poster_frame",
]

VideoSource = Union[str, os.PathLike]

#: File extensions treated as videos without probing (the CLI uses it to tell videos from images).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                    ".ogv", ".ts", ".mts", ".m2ts", ".y4m")

#: Normalization of every official UniFormer video model (slowfast defaults, never overridden in the
#: official configs; docs/official.md §6): (x / 255 - 0.45) / 0.225 on all three channels.
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

#: A run of wanted frames is reached by seeking when the keyframe before it lies more than this many
#: frames past the last decoded frame; nearer, decoding on is cheaper than a seek (decoder flush).
SEEK_MIN_GAP = 4
#: FFmpeg demuxers of still-image files: such a file is a photo (use an image model), not a video,
#: even when it is named .mp4.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe")
#: Refuse videos with more frames than this (about 9 hours at 30 fps): the packet index would not fit.
MAX_FRAMES = 1_000_000


logger = logging.getLogger(__name__)

class VideoDecodeError(ValueError):
    """The input cannot be used as a video; the message says why, in words for users."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learnt about a video (without decoding it).

    num_frames: frames in display order (the sampling rules index 0 .. num_frames - 1);
    fps: average frame rate (frames / s) from the first to the last frame's timestamp;
    duration_s: num_frames / fps;
    width / height: the *displayed* size (rotation applied), coded_width / coded_height as stored;
    rotation: degrees counter-clockwise the stored frames are turned for display (0, 90, 180, 270);
    variable_frame_rate: frame durations differ by more than 1 %; frame_pts: pts of each frame
    (stream time base); keyframes: indices of the keyframes; has_audio: an audio stream exists.
    """

    path: str
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    codec: str
    container: str
    variable_frame_rate: bool
    has_audio: bool
    time_base: Fraction
    frame_pts: tuple[int, ...] = field(repr=False)
    keyframes: tuple[int, ...] = field(repr=False)

    def time_of(self, index: int) -> float:
        """Presentation time (s) of frame ``index``, from the first frame."""
        return float((self.frame_pts[index] - self.frame_pts[0]) * self.time_base)

    def summary(self) -> dict:
        """The scalar fields, JSON-ready."""
        return {k: getattr(self, k) for k in ("num_frames", "fps", "duration_s", "width", "height", "rotation",
                                                "codec", "container", "variable_frame_rate", "has_audio")}


@dataclass
class DecodedFrames:
    """Frames returned by :func:`read_frames`.

    frames: {frame index: (3, H, W) float32 tensor in [0, 1]} for every wanted index (rotation
    applied, resized when ``short_side`` was given); decoded: frames the decoder produced (the
    cost; the video has ``info.num_frames``); seeks: seeks done; substituted: {wanted index:
    index used instead} for frames the decoder could not produce (corrupt data), empty normally;
    decode_ms: wall time of the decoding (ms).
    """

    info: VideoInfo
    frames: dict[int, torch.Tensor]
    decoded: int
    seeks: int
    substituted: dict[int, int]
    decode_ms: float

    def stack(self, indices: Sequence[int]) -> torch.Tensor:
        """The frames of ``indices`` (repeats allowed) as a clip (3, T, H, W)."""
        return torch.stack([self.frames[i] for i in indices], dim=1)


def is_video_file(path: VideoSource) -> bool:
    """True when ``path`` has a video extension (:data:`VIDEO_EXTENSIONS`) or, failing that, PyAV
    finds a video stream with more than one frame in it. Never raises for unreadable files."""
    if Path(path).suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        import av
    except ImportError:
        logger.info("PyAV is not installed (pip install 'uniformer[video]'): %s is not read as a video", path)
        return False
    try:
        with av.open(os.fspath(path)) as c:
            return bool(c.streams.video) and (c.streams.video[0].frames or 2) > 1 and c.format.name not in IMAGE_FORMATS
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:  # not a container FFmpeg reads
        logger.debug("%s is not a readable video (%s)", path, e)
        return False


def _rotation_of(stream, first_frame) -> int:
    """Counter-clockwise display rotation in degrees, snapped to 0/90/180/270."""
    deg = 0.0
    if first_frame is not None:
        deg = float(getattr(first_frame, "rotation", 0) or 0)
    if not deg:
        tag = stream.metadata.get("rotate")  # old-style tag: clockwise degrees
        if tag:
            try:
                deg = -float(tag)
            except ValueError:
                deg = 0.0
    return int(round(deg / 90.0)) % 4 * 90


def _open(path: str):
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FileNotFoundError:
        raise VideoDecodeError(f"{Path(path).name} does not exist") from None
    except (av.error.InvalidDataError, av.error.EOFError) as e:
        raise VideoDecodeError(f"{Path(path).name} is not a video file that FFmpeg can read "
                               f"({type(e).__name__}); it may be corrupt or of another type") from None
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"{Path(path).name} cannot be opened as a video ({type(e).__name__}: {e})") from None


def probe_video(source: VideoSource) -> VideoInfo:
    """Index a video without decoding it: demux the video packets, sort their pts (ms per minute of
    video, I/O bound) and read the first frame's rotation.

    A video of a single frame is indexed like any other (``num_frames`` 1, ``fps`` the rate its
    stream declares): every sampling rule then repeats that frame (see :func:`sample_clips`).

    Raises VideoDecodeError for a missing, empty (0 bytes), unreadable, corrupt or non-video file,
    a still image (a format of :data:`IMAGE_FORMATS`, whatever its name), a file without video
    stream (e.g. audio only), without frames or with more than :data:`MAX_FRAMES` frames.
    """
    import av

    path = os.fspath(source)
    name = Path(path).name
    if not Path(path).is_file():
        raise VideoDecodeError(f"{name} does not exist")
    if Path(path).stat().st_size == 0:
        raise VideoDecodeError(f"{name} is empty (0 bytes)")
    container = _open(path)
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            if not kinds:  # e.g. an MP4 written without a single frame: its empty track is dropped
                raise VideoDecodeError(f"{name} contains no video frames (the file holds no streams)")
            what = "audio only" if kinds == ["audio"] else ", ".join(kinds)
            raise VideoDecodeError(f"{name} has no video stream ({what})")
        if container.format.name in IMAGE_FORMATS:
            raise VideoDecodeError(f"{name} has a single frame: it is a still image, not a video")
        vs = container.streams.video[0]
        entries = []  # (pts, is_keyframe)
        try:
            for packet in container.demux(vs):
                if packet.size == 0 or packet.is_discard:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    raise VideoDecodeError(f"{name}: the video packets carry no timestamps, so frames cannot be "
                                           f"located; re-encode it (e.g. to MP4)")
                entries.append((ts, bool(packet.is_keyframe)))
                if len(entries) > MAX_FRAMES:
                    raise VideoDecodeError(f"{name} has more than {MAX_FRAMES} frames; cut it shorter")
        except av.error.FFmpegError as e:
            if not entries:
                raise VideoDecodeError(f"{name} is corrupt: no video packet could be read "
                                       f"({type(e).__name__})") from None
            # a damaged tail: keep the packets read so far
        if not entries:
            raise VideoDecodeError(f"{name} contains no video frames")
        entries.sort()
        pts = [p for p, _ in entries]
        dedup = [i for i in range(len(pts)) if i == 0 or pts[i] != pts[i - 1]]
        pts = [pts[i] for i in dedup]
        keyframes = tuple(j for j, i in enumerate(dedup) if entries[i][1]) or (0,)
        tb = Fraction(vs.time_base.numerator, vs.time_base.denominator) if vs.time_base else Fraction(1, 1)
        if len(pts) == 1:  # a one-frame video: the rate the stream declares (1 fps when it declares none)
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            fps, vfr = (float(rate) if rate else 1.0), False
        else:
            deltas = np.diff(np.asarray(pts, dtype=np.float64))
            step = float(np.median(deltas))
            fps = (len(pts) - 1) / float((pts[-1] - pts[0]) * tb)  # frames are distinct: pts[-1] > pts[0]
            # variable: frame durations differ by more than 1 % and by more than the rounding of the time
            # base (e.g. 29.97 fps in Matroska's milliseconds alternates 33 / 34 ms)
            vfr = bool(deltas.max() - deltas.min() > max(1.0, 0.01 * step))
        duration = len(pts) / fps  # first frame to the end of the last one
        first = None
        try:
            container.seek(0)
            first = next(container.decode(vs), None)
        except (av.error.FFmpegError, StopIteration):
            first = None
        cw, ch = vs.codec_context.width, vs.codec_context.height
        if first is not None:
            cw, ch = first.width, first.height
        if not cw or not ch:
            raise VideoDecodeError(f"{name}: the video stream has no picture size; it may be corrupt")
        rotation = _rotation_of(vs, first)
        w, h = (ch, cw) if rotation in (90, 270) else (cw, ch)
        return VideoInfo(
            path=path, num_frames=len(pts), fps=fps, duration_s=duration, width=w, height=h, coded_width=cw,
            coded_height=ch, rotation=rotation, codec=vs.codec_context.name, container=container.format.name,
            variable_frame_rate=vfr, has_audio=bool(container.streams.audio), time_base=tb, frame_pts=tuple(pts),
            keyframes=keyframes)
    finally:
        container.close()


def _to_tensor(frame, rotation: int, short_side: int | None) -> torch.Tensor:
    """PyAV frame -> (3, H, W) float32 in [0, 1], rotated for display, short side resized."""
    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # counter-clockwise, as the display matrix says
    # convert before permuting: faster
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float().div_(255.0).permute(2, 0, 1)
    if short_side is not None:
        x = resize_short_side(x.unsqueeze(0), short_side)[0]
    return x.contiguous()


def read_frames(source: VideoSource, indices: Sequence[int], *, info: VideoInfo | None = None, seek: bool = True,
                short_side: int | None = None) -> DecodedFrames:
    """Decode the frames ``indices`` (display order, 0-based; any order, repeats allowed).

    seek=True: jump to the keyframe before each run of wanted frames and stop after the last one;
    seek=False: decode from the start (the baseline the benchmark compares with). short_side: resize
    each frame right after decoding so its short side has this many pixels (bilinear, as
    :func:`resize_short_side`), which bounds memory by the wanted frames at that size.
    ``info``: the :func:`probe_video` result, if already known.

    Raises VideoDecodeError (see :func:`probe_video`; also when no wanted frame can be decoded)
    and ValueError for indices outside 0 .. num_frames - 1.
    """
    import av

    t0 = time.perf_counter()
    info = info or probe_video(source)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError("no frame indices given")
    if wanted[0] < 0 or wanted[-1] >= info.num_frames:
        raise ValueError(f"frame indices must lie in 0..{info.num_frames - 1}, got {wanted[0]}..{wanted[-1]}")
    pts_list = info.frame_pts
    pts_to_index = {p: i for i, p in enumerate(pts_list)}
    wanted_set = set(wanted)
    frames: dict[int, torch.Tensor] = {}
    decoded = seeks = 0
    container = _open(info.path)
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"

        def index_of(frame) -> int | None:
            if frame.pts is None:
                return None
            i = pts_to_index.get(frame.pts)
            if i is None:  # decoder timestamp not among the packets': nearest frame
                j = bisect.bisect_left(pts_list, frame.pts)
                i = min((k for k in (j - 1, j) if 0 <= k < len(pts_list)), key=lambda k: abs(pts_list[k] - frame.pts))
            return i

        def keyframe_before(i: int) -> int:
            k = bisect.bisect_right(info.keyframes, i) - 1
            return info.keyframes[k] if k >= 0 else 0

        stream_iter = None
        current = -1  # index of the last decoded frame
        sequential = 0  # frames without pts are counted in decode order
        last_seen: tuple[int, object] | None = None  # the latest decoded frame, kept unconverted

        def take(idx: int, frame) -> None:
            nonlocal last_seen
            if last_seen is None or idx >= last_seen[0]:
                last_seen = (idx, frame)
            if idx in wanted_set and idx not in frames:
                frames[idx] = _to_tensor(frame, info.rotation, short_side)

        def next_frame():
            try:
                return next(stream_iter, None)
            except av.error.FFmpegError:
                return None  # corrupt data: this run ends; the next target seeks past it

        for target in wanted:
            if target in frames:
                continue
            key = keyframe_before(target)
            if stream_iter is None or (seek and key - current > SEEK_MIN_GAP) or current > target:
                start = key if seek else 0
                for k in [k for k in reversed(info.keyframes) if k <= start] + [0]:
                    # step back to earlier keyframes while the seek lands after the target
                    container.seek(pts_list[k], stream=vs, backward=True, any_frame=False)
                    seeks += 1
                    stream_iter = container.decode(vs)
                    first = next_frame()
                    if first is None:
                        break
                    decoded += 1
                    idx = index_of(first)
                    current = sequential = idx if idx is not None else 0
                    if current <= target or k == 0:
                        take(current, first)
                        break
            while current < target:
                frame = next_frame()
                if frame is None:
                    break
                decoded += 1
                sequential += 1
                idx = index_of(frame)
                current = idx if idx is not None else sequential
                take(current, frame)
            if current < target:  # the stream ended or broke before the target (truncated / corrupt)
                stream_iter, current = None, -1
        fallback = None  # the latest decodable frame, to stand in for wanted frames that could not be decoded
        if last_seen is not None and len(frames) < len(wanted):
            fallback = (last_seen[0], _to_tensor(last_seen[1], info.rotation, short_side))
    except av.error.FFmpegError as e:
        if not frames:
            raise VideoDecodeError(f"{Path(info.path).name} is corrupt: decoding failed ({type(e).__name__})") from None
        fallback = None
    finally:
        container.close()
    if not frames and fallback is None:
        raise VideoDecodeError(f"{Path(info.path).name} is corrupt: none of the wanted frames could be decoded")
    substituted = {}
    have = sorted(frames)
    for i in wanted:
        if i in frames:
            continue
        earlier = [j for j in have if j < i]
        if fallback is not None and fallback[0] < i and (not earlier or fallback[0] > earlier[-1]):
            substituted[i] = fallback[0]
        else:
            substituted[i] = earlier[-1] if earlier else (have[0] if have else fallback[0])
    for i, j in substituted.items():
        frames[i] = frames[j] if j in frames else fallback[1]
    return DecodedFrames(info, frames, decoded, seeks, substituted, (time.perf_counter() - t0) * 1000)


# --- temporal sampling -----------------------------------------------------------------------------

def dense_indices(num_frames: int, clip_len: int, stride: int, clip: int = 0, num_clips: int = 1) -> list[int]:
    """Dense sampling (Kinetics; paper §6.2 "dense sampling strategy [101]"): the official
    slowfast/decord rule with ``USE_OFFSET_SAMPLING`` (docs/official.md §6).

    A clip spans ``clip_len * stride`` frames; delta = max(num_frames - span, 0); clip ``clip`` of
    ``num_clips`` starts at floor(delta / 2) (1 clip) or clip * floor(delta / (num_clips - 1));
    indices = floor(linspace(start, start + span - 1, clip_len)) clamped to num_frames - 1.
    Returns ``clip_len`` non-decreasing frame indices. Raises ValueError for bad arguments.
    """
    _check(num_frames, clip_len, clip, num_clips)
    if stride < 1:
        raise ValueError(f"stride must be >= 1 frame, got {stride}")
    span = clip_len * stride
    delta = max(num_frames - span, 0)
    start = delta // 2 if num_clips == 1 else clip * (delta // (num_clips - 1))
    if clip_len == 1:
        return [min(start, num_frames - 1)]
    # exact floor of start + j * (span - 1) / (clip_len - 1): equals torch.linspace(...).long() used officially
    return [min(start + (j * (span - 1)) // (clip_len - 1), num_frames - 1) for j in range(clip_len)]


def segment_indices(num_frames: int, clip_len: int, clip: int = 0, num_clips: int = 1) -> list[int]:
    """Uniform (segment, TSN) sampling (Something-Something, light models; paper §6.2 "uniform
    sampling strategy [96]"): the official Something-Something test rule (docs/official.md §6):
    seg = (num_frames - 1) / clip_len; frame j = round(seg * j) + int(seg / (num_clips + 1) * (clip + 1))
    (round half to even, as numpy). The whole video is covered whatever its length; short videos
    repeat frames in order. Returns ``clip_len`` non-decreasing indices. Raises ValueError.
    """
    _check(num_frames, clip_len, clip, num_clips)
    seg = float(num_frames - 1) / clip_len
    offset = int(seg / (num_clips + 1) * (clip + 1))
    return [min(int(round(seg * j)) + offset, num_frames - 1) for j in range(clip_len)]


def _check(num_frames: int, clip_len: int, clip: int, num_clips: int) -> None:
    if num_frames < 1:
        raise ValueError(f"the video needs at least one frame, got {num_frames}")
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1 frame, got {clip_len}")
    if num_clips < 1 or not 0 <= clip < num_clips:
        raise ValueError(f"clip must lie in 0..{num_clips - 1}, got {clip} of {num_clips}")


def sample_clips(num_frames: int, sampling: str, clip_len: int, num_clips: int = 1,
                 stride: int | None = None) -> list[list[int]]:
    """Frame indices of every clip: ``sampling`` 'dense' (needs ``stride``) or 'segment'. A video
    shorter than a clip repeats frames in order; one of a single frame gives that frame
    ``clip_len`` times (the rules' clamping and the official demo's indices modulo the length
    agree there). Raises ValueError for an unknown sampling or bad arguments."""
    if sampling == "dense":
        if stride is None:
            raise ValueError("dense sampling needs a stride (frames between sampled frames)")
        return [dense_indices(num_frames, clip_len, stride, c, num_clips) for c in range(num_clips)]
    if sampling == "segment":
        return [segment_indices(num_frames, clip_len, c, num_clips) for c in range(num_clips)]
    raise ValueError(f"sampling must be 'dense' or 'segment', got {sampling!r}")


# --- spatial views -----------------------------------------------------------------------------------

def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> short side ``size`` px, long side floor(long / short * size) (slowfast
    ``random_short_side_scale_jitter`` at a fixed scale: bilinear, align_corners=False; unchanged
    when the short side already has that size)."""
    h, w = frames.shape[-2:]
    if min(h, w) == size:
        return frames
    if w < h:
        new_h, new_w = int(math.floor(h / w * size)), size
    else:
        new_h, new_w = size, int(math.floor(w / h * size))
    return F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False)


def crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of each test crop of ``size`` px (slowfast ``uniform_crop``): 1 crop -> the
    centre (offsets ceil((dim - size) / 2)); 3 crops -> left, centre, right for landscape frames
    (top, centre, bottom for portrait). Raises ValueError when the frame is smaller than the crop
    or ``crops`` is not 1 or 3."""
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    if height < size or width < size:
        raise ValueError(f"a {size}x{size} crop does not fit a {width}x{height} frame")
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if crops == 1:
        return [(top, left)]
    if height > width:
        return [(0, left), (top, left), (height - size, left)]
    return [(top, 0), (top, left), (top, width - size)]


def spatial_crops(clip: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """(C, T, H, W) -> ``crops`` crops (C, T, size, size), see :func:`crop_offsets`."""
    h, w = clip.shape[-2:]
    return [clip[..., t:t + size, left:left + size] for t, left in crop_offsets(h, w, size, crops)]


def normalize(clip: torch.Tensor, mean: Sequence[float] = KINETICS_MEAN,
              std: Sequence[float] = KINETICS_STD) -> torch.Tensor:
    """(C, ...) in [0, 1] -> (x - mean) / std per channel (slowfast ``tensor_normalize``)."""
    shape = (-1,) + (1,) * (clip.ndim - 1)
    return (clip - torch.tensor(mean, dtype=clip.dtype).view(shape)) / torch.tensor(std, dtype=clip.dtype).view(shape)


# --- writing -------------------------------------------------------------------------------------------

def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as an MP4 (H.264, yuv420p, CRF 18, playable in browsers;
    odd sizes padded by one edge pixel) at ``fps`` frames per second (at least 0.5) with PyAV. The
    file is written under a temporary name and renamed, so a concurrent reader never sees half a
    file. Returns the path."""
    import av

    path = Path(path)
    frames = np.asarray(frames)
    fps = max(float(fps), 0.5)
    H, W = frames.shape[1:3]
    pad_h, pad_w = H % 2, W % 2
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}")
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = W + pad_w, H + pad_h, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for f in frames:
            if pad_h or pad_w:
                f = np.pad(f, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def poster_frame(source: VideoSource, short_side: int | None = 160) -> np.ndarray:
    """The middle frame of a video (display order, rotation applied; short side resized to
    ``short_side`` px unless None) as (H, W, 3) uint8: a thumbnail. Raises VideoDecodeError."""
    info = probe_video(source)
    middle = info.num_frames // 2
    frame = read_frames(source, [middle], info=info, short_side=short_side).frames[middle]  # (3, H, W)
    return (frame.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
