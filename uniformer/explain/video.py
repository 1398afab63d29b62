"""Space-time explanations of the video models, as values and pictures (library, no UI).

* :func:`token_attention` -- where one token looks: the softmax row of a global MHRA (Eq. 7,
  joint space-time attention, paper §4.2) for the token under a clicked pixel of a clicked frame,
  over all T' x H' x W' tokens, as one map per input frame. It runs the network up to that block
  and computes only that row from the block's own weights (1 x N per head), which the full
  capture of :func:`uniformer.explain.capture_attention` would hold as N x N for every block
  (e.g. 11 x 5 x 1568^2 floats, 0.5 GB, for UniFormer-S on 16 frames); a test checks both agree.
* :func:`grad_cam` -- Grad-CAM (Selvaraju et al.) on the 5-D activations (B, C, T', H', W') of the
  last stage (after the final norm; with the mean-pooled linear head this is exactly CAM) or of
  stage 3: channel weights = gradient of the class logit averaged over space-time, map =
  ReLU(sum_c w_c A_c), upsampled (trilinear) to the clip (T, S, S) and scaled to [0, 1]. The
  gradient is taken only through the head part, without hooks, so it is thread-safe;
  ``pytorch_grad_cam.GradCAM`` gives the same map (tested).
* :func:`overlay_frames`, :func:`write_overlay` -- heat maps over the frames, exported as GIF or
  MP4 (H.264, playable in browsers); :func:`frame_strip` and :func:`sampling_timeline` -- the
  frames a model actually saw and where they sit in the video (dense vs uniform sampling), drawn
  for a :class:`~uniformer.inference_video.VideoClips` by :func:`clip_strip` and
  :func:`clip_timeline`; :func:`frame_picture` -- one frame of a clip with a token's attention
  over it and the token outlined.

Tensors: a clip is (1, 3, T, S, S) or (3, T, S, S) normalized as the model expects; frames for
display are (T, S, S, 3) uint8; maps are float32 numpy arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from ..data.video import write_video
from ..tasks.visualize import load_font
from ..models.light import is_light
from ..registry import get_entry
from .capture import capture_attention

__all__ = ["SpaceTimeAttention", "token_attention", "token_at", "VideoCAM", "grad_cam", "overlay_frames",
           "write_overlay", "write_overlays", "frame_strip", "sampling_timeline", "clip_strip", "clip_timeline",
           "display_scale", "frame_picture", "global_blocks"]


def _batch(clip: torch.Tensor) -> torch.Tensor:
    if clip.ndim == 4:
        clip = clip.unsqueeze(0)
    if clip.ndim != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (3, T, S, S) or (1, 3, T, S, S), got {tuple(clip.shape)}")
    return clip


def global_blocks(model: nn.Module | str) -> list[tuple[int, int]]:
    """(stage, block) of every block whose attention :func:`token_attention` can show: every global
    block of UniFormer-S/B; every stage-3/4 hourglass block of the light models (§5.1; in blocks
    that shrink, fused tokens show their representative's attention, see
    :mod:`uniformer.explain.capture`). ``model``: a model, or a registered name (read from its
    config; no weights loaded)."""
    cfg = get_entry(model).config if isinstance(model, str) else model.cfg
    if is_light(cfg):
        return [(s, b) for s in (2, 3) for b in range(cfg.depths[s])]
    return [(s, b) for s in range(len(cfg.depths)) if cfg.block_types[s] == "global" for b in range(cfg.depths[s])]


@dataclass(frozen=True)
class SpaceTimeAttention:
    """The attention of one query token over every token of a clip.

    maps: (T, h, w) float32, for each *input frame* the attention weights (mean over heads) to the
    tokens of its time step (frames 2t and 2t + 1 share token time t: the stem halves T);
    per_head: (heads, T', h, w) on the token grid; grid: (T', h, w); query: (t', row, col) of the
    query token; frame: the input frame clicked; block: (stage, block) as 0-based indices;
    score_token_share: attention to the light models' score token (0 for S/B). Over all T' x h x w
    tokens (and the score token) each head's weights sum to 1.
    """

    maps: np.ndarray
    per_head: np.ndarray
    grid: tuple[int, int, int]
    query: tuple[int, int, int]
    frame: int
    block: tuple[int, int]
    score_token_share: float

    @property
    def temporal_profile(self) -> np.ndarray:
        """(T',) total attention per token time step (mean over heads): how far in time it looks."""
        return self.per_head.mean(0).sum((1, 2))

    def token_time(self, frame: int) -> int:
        """The token time step t' of input frame ``frame`` (0-based; the stem halves T)."""
        return min(frame // 2, self.grid[0] - 1)

    def query_frames(self, num_frames: int) -> tuple[int, int]:
        """The input frames (first, last; 0-based, inclusive) of the query token's time step in a
        clip of ``num_frames`` frames."""
        t = self.query[0]
        return 2 * t, min(2 * t + 1, num_frames - 1)

    def time_reach(self) -> tuple[float, float]:
        """(share of the attention in the query's own token time step, share two or more steps
        away): how far in time the token looks (mean over heads; both in [0, 1])."""
        profile, t = self.temporal_profile, self.query[0]
        return float(profile[t]), float(sum(p for k, p in enumerate(profile) if abs(k - t) >= 2))

    def query_box(self, size: int) -> tuple[float, float, float, float] | None:
        """The query token's box (x0, y0, x1, y1) in pixels of a frame shown ``size`` pixels square."""
        _, r, c = self.query
        h, w = self.grid[1:]
        return c * size / w, r * size / h, (c + 1) * size / w - 1, (r + 1) * size / h - 1


def token_at(frame: int, x: float, y: float, crop_size: int, grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """The token (t', row, col) of a (T', h, w) grid covering pixel (x, y) of input frame ``frame``
    of a clip of side ``crop_size``. Raises ValueError outside the clip."""
    tg, h, w = grid
    if not (0 <= x < crop_size and 0 <= y < crop_size):
        raise ValueError(f"pixel ({x:.0f}, {y:.0f}) is outside the {crop_size}x{crop_size} clip")
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame}")
    return min(frame // 2, tg - 1), min(int(y * h / crop_size), h - 1), min(int(x * w / crop_size), w - 1)


@torch.inference_mode()
def token_attention(model: nn.Module, clip: torch.Tensor, frame: int, x: float, y: float,
                    block: tuple[int, int] | None = None) -> SpaceTimeAttention:
    """Attention of the token under pixel (x, y) of input frame ``frame`` (0-based; x, y in model
    input pixels, 0 .. S) at global block ``block`` = (stage, index) (default: the last block of
    stage 3, the finest global grid). Pure function of the model and the clip.

    The attention is recorded by :func:`~uniformer.explain.capture.capture_attention` during one
    plain forward (logits unchanged); in light hourglass blocks that shrink, a fused token shows its
    representative's row and the representative's column is split over the fused tokens.

    Raises ValueError for a pixel outside the clip, a frame outside 0 .. T - 1 or a block without
    global MHRA (see :func:`global_blocks`).
    """
    x_in = _batch(clip).to(next(model.parameters()).device)
    T, S = x_in.shape[2], x_in.shape[-1]
    if not 0 <= frame < T:
        raise ValueError(f"frame must lie in 0..{T - 1}, got {frame}")
    allowed = global_blocks(model)
    if block is None:
        block = max(b for b in allowed if b[0] == 2)
    block = (block[0], block[1] % len(model.stages[block[0]].blocks))
    if block not in allowed:
        raise ValueError(f"block {block} has no global MHRA; choose one of {allowed}")
    name = f"stages.{block[0]}.blocks.{block[1]}.mhra"
    with capture_attention(model) as capture:  # one plain forward; the hook recomputes the probabilities
        model(x_in)
    grid = capture.spatial[name]  # (T', h, w)
    t, r, c = token_at(frame, x, y, S, grid)
    i = (t * grid[1] + r) * grid[2] + c
    row = capture.maps[name][0, :, i]  # (heads, N) on the token grid
    shrunk = capture.shrunk.get(name)
    share = float(shrunk.score_token_share()[0, :, i].mean()) if shrunk is not None else 0.0
    per_head = row.reshape(-1, *grid).cpu().numpy().astype(np.float32)
    mean = per_head.mean(0)  # (T', h, w)
    maps = np.stack([mean[min(f // 2, grid[0] - 1)] for f in range(T)])
    return SpaceTimeAttention(maps, per_head, grid, (t, r, c), frame, block, share)


@dataclass(frozen=True)
class VideoCAM:
    """Grad-CAM of one clip: cam (T, S, S) float32 in [0, 1] (upsampled, scaled by the clip's max);
    raw (T', h, w) on the token grid, before ReLU-scaling and upsampling; target: the class index
    explained; score: its logit; layer: 'last' or 'stage3'."""

    cam: np.ndarray
    raw: np.ndarray
    target: int
    score: float
    layer: str


def grad_cam(model: nn.Module, clip: torch.Tensor, target: int | None = None, layer: str = "last") -> VideoCAM:
    """Grad-CAM of class ``target`` (default: the top class) for one clip (see the module docstring).
    ``layer``: 'last' (the final normalized map, all models) or 'stage3' (the stage-3 output, twice
    the spatial resolution; UniFormer-S/B only). Raises ValueError for an unknown or unsupported layer."""
    if layer not in ("last", "stage3"):
        raise ValueError(f"layer must be 'last' or 'stage3', got {layer!r}")
    if layer == "stage3" and is_light(model):
        raise ValueError("layer 'stage3' needs UniFormer-S/B; the light models' stage 4 depends on stage 3's "
                         "token-shrinking state, use layer='last'")
    x = _batch(clip).to(next(model.parameters()).device)
    T, S = x.shape[2], x.shape[-1]
    with torch.no_grad():
        if layer == "last":
            acts = model.forward_features(x)  # (1, C, T', h, w)
        else:
            acts = x
            for stage in model.stages[:3]:
                acts = stage(acts)
    acts = acts.detach().float().requires_grad_(True)
    with torch.enable_grad():
        feats = acts if layer == "last" else model.norm(model.stages[3](acts))
        logits = model.forward_head(feats)  # (1, classes)
        target = int(logits[0].argmax()) if target is None else int(target)
        grads, = torch.autograd.grad(logits[0, target], acts)
    weights = grads.mean(dim=(2, 3, 4), keepdim=True)  # (1, C, 1, 1, 1): alpha_c
    raw = (weights * acts).sum(1).detach().float().cpu()  # (1, T', h, w)
    cam = F.interpolate(raw.clamp(min=0).unsqueeze(1), size=(T, S, S), mode="trilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    cam = cam / (cam.max() + 1e-7)
    return VideoCAM(cam.numpy().astype(np.float32), raw[0].numpy().astype(np.float32), target,
                    float(logits[0, target].detach()), layer)


def _colormap(values: np.ndarray, name: str = "jet") -> np.ndarray:
    """[0, 1] values (...) -> RGB uint8 (..., 3) with a matplotlib colormap."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)


def overlay_frames(frames: np.ndarray | torch.Tensor, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
                   normalize: bool = True) -> np.ndarray:
    """Blend heat maps over frames: frames (T, H, W, 3) uint8, heat (T, h, w) (resized to H x W
    bilinearly when smaller) -> (T, H, W, 3) uint8. ``normalize`` scales the heat by its maximum over
    the whole clip (frames stay comparable)."""
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape[0] != frames.shape[0]:
        raise ValueError(f"{heat.shape[0]} heat maps for {frames.shape[0]} frames")
    H, W = frames.shape[1:3]
    if heat.shape[1:] != (H, W):
        heat = F.interpolate(torch.from_numpy(heat)[:, None], size=(H, W), mode="bilinear",
                             align_corners=False)[:, 0].numpy()
    if normalize:
        heat = heat - heat.min()
        heat = heat / (heat.max() + 1e-7)
    colour = _colormap(heat, cmap).astype(np.float32)
    return (frames.astype(np.float32) * (1 - alpha) + colour * alpha + 0.5).clip(0, 255).astype(np.uint8)


def write_overlay(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as an animation: '.gif' (Pillow, looping) or '.mp4'
    (:func:`uniformer.data.video.write_video`: H.264 yuv420p via PyAV, even sizes padded).
    ``fps``: playback frames per second. Returns the path. Raises ValueError for another extension."""
    path = Path(path)
    frames = np.asarray(frames)
    fps = max(float(fps), 0.5)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                       optimize=False)
        return path
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"export as .gif or .mp4, got {path.suffix!r}")
    return write_video(frames, path, fps=fps)


def write_overlays(frames: np.ndarray, heat: np.ndarray, stem: str | os.PathLike, fps: float = 8.0, scale: int = 1,
                   alpha: float = 0.45) -> tuple[Path, Path]:
    """Heat maps (T, h, w) over a clip's (T, S, S, 3) uint8 ``frames`` (:func:`overlay_frames`, jet,
    opacity ``alpha``), enlarged ``scale`` times (nearest-neighbour), written as ``stem``.gif and
    ``stem``.mp4 (:func:`write_overlay`, ``fps`` frames per second; the folder is created).
    Returns (GIF path, MP4 path)."""
    over = overlay_frames(frames, heat, alpha=alpha)
    if scale > 1:
        over = over.repeat(scale, axis=1).repeat(scale, axis=2)  # (T, S * scale, S * scale, 3)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return (write_overlay(over, stem.with_name(stem.name + ".gif"), fps=fps),
            write_overlay(over, stem.with_name(stem.name + ".mp4"), fps=fps))


def frame_strip(rows: Sequence[Sequence[np.ndarray]], captions: Sequence[Sequence[str]] | None = None,
                row_titles: Sequence[str] | None = None, height: int = 96, max_width: int = 1600,
                per_row: int = 8, boxes: Sequence[tuple[float, float, float, float]] | None = None) -> Image.Image:
    """Thumbnails of the frames of each clip: ``rows[r][i]`` (H, W, 3) uint8 frames, ``per_row`` to
    a line (a clip wraps onto several lines), each ``height`` px high (less when a line would exceed
    ``max_width``), ``captions[r][i]`` under each, ``row_titles[r]`` (may hold a newline) at the left
    of a clip's first line; ``boxes`` (x0, y0, x1, y1 in frame pixels) are outlined on every
    thumbnail (the crops the model saw). Returns an RGB image."""
    lines, line_captions, line_titles = [], [], []
    for r, row in enumerate(rows):
        for start in range(0, len(row), per_row):
            lines.append(row[start:start + per_row])
            line_captions.append(captions[r][start:start + per_row] if captions else None)
            line_titles.append(row_titles[r] if row_titles and start == 0 else "")
    n = max(len(line) for line in lines)
    h0, w0 = rows[0][0].shape[:2]
    title_w = 84 if row_titles else 0
    gap = 4
    th = min(height, int((max_width - title_w) / n / (w0 / h0)) - gap)
    tw = max(1, int(round(th * w0 / h0)))
    cap_h = 16 if captions else 0
    W = title_w + n * (tw + gap)
    H = len(lines) * (th + cap_h + gap)
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = load_font(13)
    for k, line in enumerate(lines):
        y = k * (th + cap_h + gap)
        if line_titles[k]:
            draw.text((2, y + 4), line_titles[k], fill=(0, 0, 0), font=font)
        for i, frame in enumerate(line):
            x = title_w + i * (tw + gap)
            canvas.paste(Image.fromarray(np.asarray(frame)).resize((tw, th), Image.BILINEAR), (x, y))
            for box in boxes or ():
                sx, sy = tw / frame.shape[1], th / frame.shape[0]
                draw.rectangle((x + box[0] * sx, y + box[1] * sy, x + box[2] * sx - 1, y + box[3] * sy - 1),
                               outline=(255, 214, 0), width=2)
            if line_captions[k]:
                draw.text((x + 1, y + th + 1), line_captions[k][i], fill=(40, 40, 40), font=font)
    return canvas


def sampling_timeline(num_frames: int, clips: Sequence[Sequence[int]], fps: float | None = None, width: int = 1200,
                      title: str | None = None) -> Image.Image:
    """A picture of where the sampled frames sit in the video: a bar for frames 0 .. num_frames - 1,
    one row of ticks per clip (the span a dense clip covers shaded), time axis in seconds when
    ``fps`` is given. Returns an RGB image ``width`` px wide."""
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    left, right, row_h, top = 70, 24, 24, 28 if title else 8
    H = top + row_h * len(clips) + 32
    canvas = Image.new("RGB", (width, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = load_font(13)
    if title:
        draw.text((left, 6), title, fill=(0, 0, 0), font=font)
    span = width - left - right

    def xpos(i: float) -> float:
        return left + span * (i + 0.5) / max(num_frames, 1)

    for r, idx in enumerate(clips):
        y = top + r * row_h
        col = colours[r % len(colours)]
        draw.rectangle((left, y + 4, left + span, y + row_h - 4), fill=(238, 238, 238))
        draw.rectangle((xpos(min(idx)) - 1, y + 4, xpos(max(idx)) + 1, y + row_h - 4),
                       fill=tuple(int(c * 0.25 + 255 * 0.75) for c in col))
        for i in idx:
            draw.line((xpos(i), y + 2, xpos(i), y + row_h - 2), fill=col, width=2)
        draw.text((4, y + 5), f"clip {r + 1}", fill=(0, 0, 0), font=font)
    y = top + row_h * len(clips) + 4
    draw.line((left, y, left + span, y), fill=(0, 0, 0))
    for k in range(6):
        i = (num_frames - 1) * k / 5
        label = f"{i / fps:.1f} s" if fps else f"{int(i)}"
        draw.line((xpos(i), y, xpos(i), y + 4), fill=(0, 0, 0))
        draw.text((xpos(i) - 14, y + 6), label, fill=(0, 0, 0), font=font)
    draw.text((4, y + 6), "frames" if not fps else "time", fill=(0, 0, 0), font=font)
    return canvas


def _uint8(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (frame.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def clip_strip(clips) -> Image.Image:
    """:func:`frame_strip` of a :class:`~uniformer.inference_video.VideoClips`: one row per clip,
    the whole frames it took (after the short-side resize) captioned '#index', the crops outlined,
    each row titled with the clip's time span (s)."""
    first = next(iter(clips.decoded.frames.values()))
    scale = first.shape[-1] / clips.info.width  # displayed-frame pixels -> decoded-frame pixels
    boxes = [tuple(c * scale for c in box) for box in clips.crop_boxes]
    rows = [[_uint8(clips.decoded.frames[i]) for i in idx] for idx in clips.clip_indices]
    captions = [[f"#{i}" for i in idx] for idx in clips.clip_indices]
    titles = [f"clip {c + 1}\n{clips.info.time_of(idx[0]):.1f}-{clips.info.time_of(idx[-1]):.1f} s"
              for c, idx in enumerate(clips.clip_indices)]
    return frame_strip(rows, captions, titles, boxes=boxes)


def clip_timeline(clips) -> Image.Image:
    """:func:`sampling_timeline` of a :class:`~uniformer.inference_video.VideoClips`, titled with
    its sampling rule (dense: frames and stride; uniform: segments), clips and video length."""
    n, t = clips.info.num_frames, clips.frames_per_clip
    kind = (f"dense sampling: {t} frames, 1 every {clips.sampling_rate}" if clips.sampling == "dense"
            else f"uniform (segment) sampling: {t} segments over the whole video")
    return sampling_timeline(n, clips.clip_indices, fps=clips.info.fps,
                             title=f"{kind} \u00b7 {len(clips.clip_indices)} clip(s) \u00b7 {n} frames in the video")


def display_scale(side: int, small: int = 64, target: int = 224) -> int:
    """Integer factor frames ``side`` pixels square are enlarged by for display (nearest-neighbour):
    1 for frames of at least ``small`` px, else about ``target`` px / ``side`` (the moving-digits
    model's 32-px frames: 7x). Clicks on the enlarged frame are divided by it."""
    return 1 if side >= small else max(1, round(target / side))


def frame_picture(frames: np.ndarray, frame: int, attention: SpaceTimeAttention | None = None, heat: bool = False,
                  scale: int = 1, alpha: float = 0.55) -> Image.Image:
    """Frame ``frame`` (0-based) of a clip's (T, S, S, 3) uint8 ``frames``, enlarged ``scale`` times
    (nearest-neighbour), as an RGB image. With ``heat``, ``attention.maps[frame]`` is blended over
    it (inferno, opacity ``alpha``) on one colour scale for the whole clip (the maps' maximum over
    all frames), so frames stay comparable. The query token of ``attention`` is outlined (cyan)
    when ``frame`` shares its token time step."""
    if heat and attention is not None:
        peak = float(attention.maps.max()) or 1.0
        pixels = overlay_frames(frames[frame:frame + 1], attention.maps[frame:frame + 1] / peak, alpha=alpha,
                                cmap="inferno", normalize=False)[0]
    else:
        pixels = frames[frame]
    img = Image.fromarray(pixels)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if attention is not None and attention.token_time(attention.frame) == attention.token_time(frame):
        ImageDraw.Draw(img).rectangle(attention.query_box(img.size[0]), outline=(0, 255, 255), width=2)
    return img
