"""Video: registry entries, frame sampling on generated videos whose frames show their index, decoding
(seeking, rotation, variable frame rate, short and bad files), views, inflation, explanations, the
CLI and the app's handlers. (Golden parity, exact keys and parameter counts of every video spec run
in test_reference_parity.py.)

Unit tests use tiny models (``create_model(name, depths=(1, 1, 1, 1), ...)``: the registered
entry's preprocessing with a small network) and small videos, so the file runs in well under a
minute on two CPU cores.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from videofiles import make_bad_videos, pattern, read_index, write_indexed_video

import uniformer
from uniformer.data.video import (KINETICS_MEAN, KINETICS_STD, VideoDecodeError, crop_offsets, dense_indices,
                                  probe_video, read_frames, resize_short_side, sample_clips, segment_indices,
                                  spatial_crops)
from uniformer.inference_video import Views, load_clips, predict_clips, predict_video

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 64), head_dim=16)


# --- the official rules, transcribed from the official code (docs/official.md §6) -----------------------

def official_dense(n: int, num_frames: int, stride: int, clip: int, num_clips: int) -> list[int]:
    """slowfast decoder.get_start_end_idx(use_offset=True) + the decord branch of decoder.decode."""
    clip_sz = stride * num_frames
    delta = max(n - clip_sz, 0)
    start = math.floor(delta / 2) if num_clips == 1 else clip * math.floor(delta / (num_clips - 1))
    index = torch.linspace(start, start + clip_sz - 1, num_frames)
    return torch.clamp(index, 0, n - 1).long().tolist()


def official_segment(n: int, num_frames: int, clip: int, num_clips: int) -> list[int]:
    """sth.py get_seq_frames in test mode (its '+ 1' only addresses 1-based image files)."""
    seg_size = float(n - 1) / num_frames
    duration = seg_size / (num_clips + 1)
    return [int(np.round(seg_size * i)) + int(duration * (clip + 1)) for i in range(num_frames)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Generated videos: long (600 frames, 25 fps, keyframe every 12), short (20 frames), odd fps
    (29.97, MKV), variable frame rate, rotated (90 degrees), with an audio track."""
    d = tmp_path_factory.mktemp("videos")
    durations = [33, 33, 50, 17, 100, 40, 33, 67]
    pts = np.concatenate([[0], np.cumsum([durations[i % 8] for i in range(159)])]).tolist()
    return {
        "long": write_indexed_video(d / "long.mp4", 600),
        "short": write_indexed_video(d / "short.mp4", 20),
        "ntsc": write_indexed_video(d / "ntsc.mkv", 97, fps=Fraction(30000, 1001)),
        "vfr": write_indexed_video(d / "vfr.mkv", 160, pts=pts, time_base=Fraction(1, 1000)),
        "rotated": write_indexed_video(d / "rotated.mp4", 30, rotation=90),
        "audio": write_indexed_video(d / "with_audio.mp4", 50, audio=True),
    }


def tiny(name: str, frames: int | None = None, size: int | None = None):
    """The registered entry's preprocessing on a tiny network; ``frames`` / ``size`` shrink the clip."""
    light = {"keep_ratios": ((1.0,), (0.5,)), "trade_offs": ((1.0,), (0.5,))} if "xs" in name.split("_")[1] else {}
    model = uniformer.create_model(name, **TINY, **light)
    cfg = model.pretrained_cfg
    t, s = frames or cfg.input_size[1], size or cfg.input_size[-1]
    model.pretrained_cfg = dataclasses.replace(cfg, input_size=(3, t, s, s))
    return model


# --- registry -----------------------------------------------------------------------------------------

def test_registered_video_entries():
    names = uniformer.list_models(task="video-classification")
    for name in ("uniformer_small_k400_16x8", "uniformer_small_k600_16x8", "uniformer_base_k400_32x4",
                 "uniformer_base_k600_32x4", "uniformer_small_sthv1_16_prek600", "uniformer_small_sthv2_16_prek600",
                 "uniformer_base_sthv1_32_prek600", "uniformer_base_sthv2_32_prek600", "uniformer_xxs16_160_k400",
                 "uniformer_small_k400_8x8", "uniformer_base_k400_16x4", "uniformer_xxs4_128_k400",
                 "uniformer_xs32_192_k400"):
        assert name in names
    for name in names:
        p = uniformer.get_entry(name).pretrained
        assert p.mean == (0.45,) * 3 and p.std == (0.225,) * 3
        assert p.hub or p.download_hint or p.package_file  # package_file: trained by this project
    s16 = uniformer.get_entry("uniformer_small_k400_16x8").pretrained
    assert (s16.hub, s16.input_size, s16.sampling, s16.sampling_rate) == (
        "Sense-X/uniformer_video:uniformer_small_k400_16x8.pth", (3, 16, 224, 224), "dense", 8)
    assert (s16.test_clips, s16.test_crops, s16.test_short_side(1), s16.test_short_side(3)) == (4, 1, 256, 224)
    assert s16.label_set == "kinetics-400" and s16.reference_variant == "video_s16"
    ssv2 = uniformer.get_entry("uniformer_base_sthv2_32_prek600").pretrained
    assert (ssv2.sampling, ssv2.num_frames, ssv2.test_clips, ssv2.test_crops, ssv2.test_short_side(3)) == (
        "segment", 32, 1, 3, 224)
    assert ssv2.label_set == "something-something-v2" and ssv2.num_classes == 174
    xxs = uniformer.get_entry("uniformer_xxs16_160_k400").pretrained
    assert (xxs.hub, xxs.input_size, xxs.sampling, xxs.test_short_side(1)) == (
        "Andy1621/uniformer_light:uniformer_xxs16_160_k400.pth", (3, 16, 160, 160), "segment", 160)
    assert uniformer.get_entry("uniformer_base_k400_16x4").pretrained.hub == (
        "Andy1621/uniformer:uniformer_base_k400_16x4.pth")
    assert uniformer.get_entry("uniformer_xxs4_128_k400").config.layer_scale_init == 0.1


def test_video_model_maps_clips_to_logits():
    model = uniformer.create_model("uniformer_xxs4_128_k400", **TINY, keep_ratios=((1.0,), (0.5,)),
                                   trade_offs=((1.0,), (0.5,)))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 4, 64, 64)).shape == (2, 400)
    small = uniformer.create_model("uniformer_small_sthv2_16_prek600", **TINY)
    with torch.no_grad():
        assert small(torch.randn(1, 3, 6, 64, 96)).shape == (1, 174)


# --- sampling rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 20, 127, 128, 129, 300, 1001])
@pytest.mark.parametrize("frames, stride, clips", [(16, 8, 1), (16, 4, 4), (8, 8, 4), (32, 4, 2), (16, 2, 3)])
def test_dense_rule_equals_the_official_code(n, frames, stride, clips):
    for c in range(clips):
        assert dense_indices(n, frames, stride, c, clips) == official_dense(n, frames, stride, c, clips)


@pytest.mark.parametrize("n", [1, 3, 16, 17, 40, 121, 1000])
@pytest.mark.parametrize("frames, clips", [(16, 1), (32, 1), (8, 2), (16, 3), (4, 1)])
def test_segment_rule_equals_the_official_code(n, frames, clips):
    for c in range(clips):
        assert segment_indices(n, frames, c, clips) == official_segment(n, frames, c, clips)


def test_sampling_keeps_order_on_short_videos_and_rejects_bad_arguments():
    for idx in sample_clips(20, "dense", 16, 4, 8) + sample_clips(5, "segment", 16, 3):
        assert idx == sorted(idx) and max(idx) < 20
    assert dense_indices(20, 16, 8) == official_dense(20, 16, 8, 0, 1)  # span 128 > 20: the tail repeats frame 19
    with pytest.raises(ValueError, match="stride"):
        sample_clips(100, "dense", 16, 1)
    with pytest.raises(ValueError, match="sampling"):
        sample_clips(100, "random", 16, 1)
    with pytest.raises(ValueError, match="clip"):
        dense_indices(100, 16, 4, clip=4, num_clips=4)


# --- decoding generated videos ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name, views", [
    ("long", "uniformer_small_k400_16x4", Views(4, 1)),        # dense, 4 clips over 600 frames
    ("long", "uniformer_small_sthv2_16_prek600", Views(2, 1)),  # segment, 2 temporal views
    ("short", "uniformer_small_k400_16x8", Views(3, 1)),       # 20 frames < a 128-frame clip
    ("short", "uniformer_xxs16_160_k400", Views(1, 1)),        # segment over 20 frames
    ("ntsc", "uniformer_small_k400_8x8", Views(2, 1)),         # 29.97 fps, MKV
    ("vfr", "uniformer_small_k400_16x4", Views(1, 1)),         # variable frame rate
    ("vfr", "uniformer_base_sthv1_32_prek400", Views(1, 1)),
])
def test_sampled_frames_are_the_rule_s_frames(videos, kind, name, views):
    """The frames a model gets are the official rule's indices into the video's frames, and the
    decoded pictures show exactly those indices (seeking lands on the right frames)."""
    cfg = uniformer.get_entry(name).pretrained
    clips = load_clips(videos[kind], cfg, views)
    n = clips.info.num_frames
    t = cfg.input_size[1]
    expected = ([official_dense(n, t, cfg.sampling_rate, c, views.clips) for c in range(views.clips)]
                if cfg.sampling == "dense" else [official_segment(n, t, c, views.clips) for c in range(views.clips)])
    assert clips.clip_indices == expected
    for indices in clips.clip_indices:
        assert [read_index(clips.decoded.frames[i].numpy()) for i in indices] == indices
    assert clips.decoded.substituted == {}
    assert clips.views.shape == (views.count, 3, t, cfg.input_size[-1], cfg.input_size[-1])


def test_frame_counts_and_rates_of_generated_videos(videos):
    long, ntsc, vfr = (probe_video(videos[k]) for k in ("long", "ntsc", "vfr"))
    assert (long.num_frames, long.fps, long.duration_s, long.variable_frame_rate) == (600, 25.0, 24.0, False)
    assert ntsc.num_frames == 97 and abs(ntsc.fps - 30000 / 1001) < 0.01  # Matroska rounds pts to ms
    assert not ntsc.variable_frame_rate
    assert vfr.num_frames == 160 and vfr.variable_frame_rate
    assert vfr.time_of(4) == pytest.approx(0.133)  # 33 + 33 + 50 + 17 ms: times come from the pts
    assert probe_video(videos["audio"]).has_audio


def test_seeking_decodes_a_fraction_of_a_long_video_and_matches_decoding_everything(videos):
    info = probe_video(videos["long"])
    wanted = [i for c in sample_clips(600, "dense", 8, 3, 4) for i in c]
    fast = read_frames(videos["long"], wanted, info=info)
    slow = read_frames(videos["long"], wanted, info=info, seek=False)
    assert fast.decoded < 0.35 * info.num_frames and fast.seeks >= 3
    assert slow.decoded >= max(wanted) + 1 - 2
    assert set(fast.frames) == set(slow.frames) == set(wanted)
    for i in wanted:
        assert torch.equal(fast.frames[i], slow.frames[i]) and read_index(fast.frames[i].numpy()) == i


def test_minutes_long_video_decodes_only_the_sampled_stretch(tmp_path):
    """Two minutes at 25 fps: one dense 16x8 clip decodes at most its 128-frame span plus one GOP
    (skipping ahead to a keyframe inside the span when that saves frames)."""
    path = write_indexed_video(tmp_path / "two_minutes.mp4", 3000, size=(96, 64), gop=25)
    cfg = uniformer.get_entry("uniformer_small_k400_16x8").pretrained
    clips = load_clips(path, cfg, Views(1, 1))
    assert clips.info.num_frames == 3000 and clips.info.duration_s == pytest.approx(120)
    assert clips.clip_indices == [official_dense(3000, 16, 8, 0, 1)]
    assert clips.decoded.decoded <= 128 + 25 and clips.decoded.seeks <= 2 + 128 // 25  # a seek per keyframe at most
    assert [read_index(clips.decoded.frames[i].numpy()) for i in clips.clip_indices[0]] == clips.clip_indices[0]


def test_full_hd_frames_are_resized_while_decoding(tmp_path):
    """1080p: every kept frame is already at the test short side (one full-size frame alive at a time)."""
    path = write_indexed_video(tmp_path / "full_hd.mp4", 24, size=(1920, 1080), gop=12)
    cfg = uniformer.get_entry("uniformer_small_k400_16x8").pretrained
    clips = load_clips(path, cfg, Views(1, 1))
    shapes = {tuple(f.shape) for f in clips.decoded.frames.values()}
    assert shapes == {(3, 256, 455)} and len(clips.decoded.frames) == len(set(clips.clip_indices[0]))
    assert [read_index(clips.decoded.frames[i].numpy()) for i in clips.clip_indices[0]] == clips.clip_indices[0]


def test_rotation_metadata_is_applied(videos):
    info = probe_video(videos["rotated"])
    assert (info.rotation, info.width, info.height, info.coded_width, info.coded_height) == (90, 96, 160, 160, 96)
    frame = read_frames(videos["rotated"], [7], info=info).frames[7].numpy()  # (3, 160, 96)
    assert frame.shape == (3, 160, 96)
    # stored top-left marker -> bottom-left after a 90-degree counter-clockwise turn
    assert frame[:, -6:, :4].mean() > 0.9 and frame[:, :6, :4].mean() < 0.5
    assert read_index(np.rot90(np.moveaxis(frame, 0, -1) * 255, -1)) == 7


def test_short_side_resize_bounds_memory_and_keeps_aspect():
    frames = torch.rand(2, 3, 720, 1280)
    out = resize_short_side(frames, 256)
    assert out.shape == (2, 3, 256, 455)  # floor(1280 / 720 * 256)
    assert resize_short_side(torch.rand(1, 3, 300, 200), 224).shape == (1, 3, 336, 224)
    assert resize_short_side(out, 256) is out


def test_spatial_crops_follow_slowfast_uniform_crop():
    assert crop_offsets(256, 455, 224, 1) == [(16, 116)]  # ceil((256-224)/2), ceil((455-224)/2)
    assert crop_offsets(224, 398, 224, 3) == [(0, 0), (0, 87), (0, 174)]  # left, centre, right
    assert crop_offsets(398, 224, 224, 3) == [(0, 0), (87, 0), (174, 0)]  # portrait: top, centre, bottom
    clip = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    left, centre, right = spatial_crops(clip, 5, 3)
    assert torch.equal(left, clip[..., :5]) and torch.equal(centre, clip[..., 1:6])
    assert torch.equal(right, clip[..., 2:])
    with pytest.raises(ValueError, match="crops"):
        crop_offsets(256, 300, 224, 2)


def test_views_are_normalized_crops_of_the_sampled_frames(videos):
    cfg = tiny("uniformer_small_k400_16x4", frames=8, size=64).pretrained_cfg
    clips = load_clips(videos["long"], cfg, Views(1, 3))
    assert clips.short_side == 64  # several crops: short side = crop size
    frames = clips.decoded.stack(clips.clip_indices[0])  # (3, 8, 64, 106)
    assert frames.shape[-2:] == (64, int(160 / 96 * 64))
    mean, std = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1), torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    for view, (top, left) in zip(clips.views, crop_offsets(64, frames.shape[-1], 64, 3)):
        torch.testing.assert_close(view, (frames[..., top:top + 64, left:left + 64] - mean) / std)
    assert clips.crop_boxes[0][0] == 0 and clips.crop_boxes[2][2] == pytest.approx(160)
    one = load_clips(videos["long"], cfg, Views(1, 1))
    assert one.short_side == int(64 / (224 / 256))  # 1 crop: the Kinetics short side 256 / 224 of the crop


# --- bad files -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    return make_bad_videos(tmp_path_factory.mktemp("bad_videos"))


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty.mp4 is empty (0 bytes)"),
    ("text", "notes.mp4 is not a video file that FFmpeg can read"),
    ("garbage", "garbage.mp4 is not a video file that FFmpeg can read"),
    ("truncated", "truncated.mp4 is not a video file that FFmpeg can read"),
    ("audio", "song.mp4 has no video stream (audio only)"),
    ("still", "photo.mp4 has a single frame: it is a still image, not a video"),
])
def test_bad_files_raise_a_clear_error(bad_videos, kind, message):
    with pytest.raises(VideoDecodeError) as info:
        load_clips(bad_videos[kind], uniformer.get_entry("uniformer_xxs16_160_k400").pretrained)
    assert message in str(info.value)


def _no_frames(path: Path) -> Path:
    """A video file whose H.264 stream got no frame at all (the header written, nothing encoded)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


def test_a_one_frame_video_is_answered_with_its_frame_repeated(tmp_path):
    """The official index rules clamp (dense) or round (segment) into 0 .. n - 1, as the official
    demo's indices modulo n do: with one frame, every clip repeats it. A note says so."""
    one = write_indexed_video(tmp_path / "one.mp4", 1, fps=30)
    info = probe_video(one)
    assert (info.num_frames, info.fps, info.variable_frame_rate) == (1, 30.0, False)
    assert info.duration_s == pytest.approx(1 / 30)
    for name, views in (("uniformer_small_k400_16x8", Views(4, 1)), ("uniformer_xxs16_160_k400", Views(1, 3))):
        clips = load_clips(one, uniformer.get_entry(name).pretrained, views)
        t = clips.frames_per_clip
        assert clips.clip_indices == [[0] * t] * views.clips
        assert [official_dense(1, t, 8, c, views.clips) for c in range(views.clips)] == [[0] * t] * views.clips
        assert read_index(clips.decoded.frames[0].numpy()) == 0 and clips.decoded.substituted == {}
        assert torch.equal(clips.views[0, :, 0], clips.views[0, :, -1])  # the same frame throughout
        assert clips.notes == ["This video has 1 frame: the clip repeats it, as the official index rule does; "
                               "motion cannot be judged."]
        assert clips.playback_fps == 30.0
    prediction = predict_video(tiny("uniformer_xxs16_160_k400", frames=4, size=64), one)
    assert len(prediction.topk) == 5 and prediction.notes == clips.notes
    assert prediction.to_dict()["notes"] == clips.notes  # the CLI's JSON carries it too


def test_poster_frame_is_the_middle_frame(videos):
    from uniformer.data.video import poster_frame

    poster = poster_frame(videos["long"], short_side=48)  # 600 frames of 160x96
    assert poster.shape == (48, 80, 3) and poster.dtype == np.uint8 and read_index(poster) == 300
    assert poster_frame(videos["rotated"], short_side=None).shape == (160, 96, 3)  # displayed upright


def test_videos_without_frames_get_a_clear_message(tmp_path):
    with pytest.raises(VideoDecodeError, match="none.mp4 contains no video frames"):
        probe_video(_no_frames(tmp_path / "none.mp4"))
    with pytest.raises(VideoDecodeError, match="none.mkv is not a video file that FFmpeg can read"):
        probe_video(_no_frames(tmp_path / "none.mkv"))


def test_moving_digits_clips_decode_to_the_dataset_s_clips(tmp_path):
    """The written MP4s, decoded by the moving-digits model's own pipeline, give the clips of
    MovingDigitsDataset (up to H.264 rounding): one frame of each position, in order."""
    from uniformer.data.moving_digits import write_moving_digits_clips
    from uniformer.models.digits import MOVING_DIGITS_CLASSES, MOVING_DIGITS_MODEL
    from uniformer.train.data import MovingDigitsDataset

    written = write_moving_digits_clips(tmp_path)
    assert list(written) == list(MOVING_DIGITS_CLASSES)
    assert [p.name for p in written.values()][:2] == ["moving_digits_0_left.mp4", "moving_digits_1_right.mp4"]
    cfg = uniformer.get_entry(MOVING_DIGITS_MODEL).pretrained
    data = MovingDigitsDataset("val", length=6, num_frames=8, size=32, digit_size=12, mean=cfg.mean, std=cfg.std)
    for i, path in enumerate(written.values()):
        info = probe_video(path)
        assert (info.num_frames, info.width, info.fps) == (32, 128, 8.0)
        clip, label = data[i]
        assert label == i
        decoded = load_clips(path, cfg).views[0]  # (3, 8, 32, 32), normalized
        assert (decoded - clip).abs().mul(cfg.std[0]).mean() < 0.005  # 3e-4 measured; frames out of order: > 0.05
    stamp = written["left"].stat().st_mtime_ns
    assert write_moving_digits_clips(tmp_path)["left"].stat().st_mtime_ns == stamp  # reused, not rewritten


def test_missing_file_and_truncated_tail(tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")
    import av

    src = write_indexed_video(tmp_path / "src.mp4", 60)
    fast = tmp_path / "faststart.mp4"  # index first, so a cut file still opens
    with av.open(str(src)) as i, av.open(str(fast), "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = s
                o.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.5)])
    info = probe_video(cut)
    assert 5 < info.num_frames < 60  # the packets that are there
    result = read_frames(cut, range(info.num_frames), info=info)
    good = [i for i in range(info.num_frames) if i not in result.substituted]
    assert good and all(read_index(result.frames[i].numpy()) == i for i in good)
    assert all(j < i for i, j in result.substituted.items())  # stand-ins come from before


# --- inference --------------------------------------------------------------------------------------------

def test_predict_video_averages_view_logits(videos):
    model = tiny("uniformer_small_k400_16x4", frames=8, size=64)
    pred = predict_video(model, videos["long"], Views(2, 3))
    assert len(pred.topk) == 5 and len(pred.views) == 6
    assert [(v.clip, v.crop) for v in pred.views] == [(c, k) for c in range(2) for k in range(3)]
    clips = load_clips(videos["long"], model.pretrained_cfg, Views(2, 3))
    with torch.no_grad():
        logits = model(clips.views)
    expected = logits.mean(0).softmax(-1)
    assert [c.index for c in pred.topk] == expected.topk(5).indices.tolist()
    assert [c.probability for c in pred.topk] == pytest.approx(expected.topk(5).values.tolist(), rel=1e-4)
    assert list(pred.views[4].probabilities) == pytest.approx(
        logits[4].softmax(-1)[[c.index for c in pred.topk]].tolist(), rel=1e-4)
    assert pred.clip_indices == [official_dense(600, 8, 4, c, 2) for c in range(2)]
    assert pred.mean == (0.45,) * 3 and pred.std == (0.225,) * 3 and pred.sampling == "dense"
    assert pred.decode_ms > 0 and pred.inference_ms > 0 and pred.frames_decoded < 600
    assert pred.topk[0].label in uniformer.data.get_labels("kinetics-400")
    json.dumps(pred.to_dict())
    seen = []
    predict_clips(model, clips, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and len(seen) == 7


# --- inflation ---------------------------------------------------------------------------------------------

def test_inflation_is_the_official_mean_inflation():
    from hubcache import official_state_dict

    from uniformer.models.inflate import inflate_model, load_inflated

    image_sd = official_state_dict("image_s")  # official names, 1000 classes
    video = uniformer.create_model("uniformer_small_k400_16x8")
    report = load_inflated(video, image_sd)
    assert sorted(report.dropped) == ["head.bias", "head.weight"]  # 1000 vs 400 classes: skipped
    assert report.missing == ["head.weight", "head.bias"] and not report.unexpected
    assert report.inflated["stages.0.downsample.proj.weight"] == 3  # stem 3x4x4
    assert report.inflated["stages.0.blocks.0.mhra.affinity.weight"] == 5  # local MHRA 5x5x5
    assert report.inflated["stages.2.blocks.0.dpe.proj.weight"] == 3 and report.inflated[
        "stages.1.downsample.proj.weight"] == 1
    sd = video.state_dict()
    stem2d = image_sd["patch_embed1.proj.weight"]
    for t in range(3):
        torch.testing.assert_close(sd["stages.0.downsample.proj.weight"][:, :, t], stem2d / 3)
    torch.testing.assert_close(sd["stages.3.blocks.2.mhra.qkv.weight"], image_sd["blocks4.2.attn.qkv.weight"])

    # a clip that does not change over time: away from the temporal borders the inflated stem gives
    # the image stem's output on each frame
    frame = torch.randn(1, 3, 64, 64)
    still = frame.unsqueeze(2).repeat(1, 1, 8, 1, 1)
    with torch.no_grad():
        out3d = video.stages[0].downsample(still)  # (1, 64, 4, 16, 16)
        out2d = torch.nn.functional.conv2d(frame, stem2d, image_sd["patch_embed1.proj.bias"], stride=4)
        out2d = torch.nn.functional.layer_norm(out2d.movedim(1, -1), (64,), image_sd["patch_embed1.norm.weight"],
                                               image_sd["patch_embed1.norm.bias"]).movedim(-1, 1)
    for t in (1, 2, 3):
        torch.testing.assert_close(out3d[:, :, t], out2d, rtol=1e-4, atol=1e-5)

    # model to model (our names), the official code's unused 'center' mode, a new head skipped
    image = uniformer.create_model("uniformer_small_in1k", **TINY)
    video2 = uniformer.create_model("uniformer_small_k400_16x8", **TINY)
    report2 = inflate_model(image, video2, "center", skip=("head.",))
    assert "head.weight" in report2.missing and not report2.dropped
    w = video2.state_dict()["stages.0.blocks.0.mhra.affinity.weight"]
    assert torch.equal(w[:, :, 2], image.state_dict()["stages.0.blocks.0.mhra.affinity.weight"])
    assert not w[:, :, [0, 1, 3, 4]].any()
    with pytest.raises(ValueError, match="mode"):
        inflate_model(image, video2, "nearest")


# --- command line ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_predicts_a_video_and_reports_a_bad_one(videos, bad_videos, tmp_path):
    from hubcache import official_state_dict

    checkpoint = tmp_path / "xxs4.pth"
    torch.save(official_state_dict("light_video_xxs4"), checkpoint)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "uniformer", "predict", str(videos["long"]), str(bad_videos["text"]),
                           "--model", "uniformer_xxs4_128_k400", "--checkpoint", str(checkpoint), "--views", "2x1",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr  # one input failed, the other was answered
    assert "notes.mp4 is not a video file that FFmpeg can read" in proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["model_name"] == "uniformer_xxs4_128_k400" and result["weights"]["source"] == "local"
    assert len(result["topk"]) == 5 and len(result["views"]) == 2
    assert result["clip_indices"] == [official_segment(600, 4, c, 2) for c in range(2)]
    assert result["input_size"] == [3, 4, 128, 128] and result["mean"] == [0.45] * 3
    assert result["video"]["num_frames"] == 600 and result["decode_ms"] > 0 and result["notes"] == []


# --- space-time explanations -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_small_k400_16x8", **TINY)
    return model, torch.randn(1, 3, 8, 64, 64)


def test_token_attention_is_the_captured_attention_row(tiny_clip):
    from uniformer.explain import capture_attention
    from uniformer.explain.video import global_blocks, token_attention

    model, clip = tiny_clip
    assert global_blocks(model) == [(2, 0), (3, 0)]
    # by name, from the registered config (depths 3, 4, 8, 3), no weights loaded
    assert global_blocks("uniformer_small_k400_16x8") == [(2, b) for b in range(8)] + [(3, b) for b in range(3)]
    att = token_attention(model, clip, frame=5, x=40.0, y=10.0)  # stage-3 grid (4, 4, 4)
    assert att.grid == (4, 4, 4) and att.query == (2, 0, 2) and att.block == (2, 0)
    with capture_attention(model) as cap, torch.no_grad():
        model(clip)
    row = cap.maps["stages.2.blocks.0.mhra"][0, :, (2 * 4 + 0) * 4 + 2]  # (heads, N)
    torch.testing.assert_close(torch.from_numpy(att.per_head), row.reshape(-1, 4, 4, 4), rtol=1e-4, atol=1e-6)
    assert att.maps.shape == (8, 4, 4) and np.allclose(att.maps[4], att.maps[5])  # frames 4, 5 -> token time 2
    assert att.temporal_profile.sum() == pytest.approx(1.0, abs=1e-5) and att.score_token_share == 0.0
    last = token_attention(model, clip, 0, 1.0, 1.0, block=(3, -1))
    assert last.grid == (4, 2, 2) and last.block == (3, 0)
    with pytest.raises(ValueError, match="outside"):
        token_attention(model, clip, 0, 64.0, 3.0)
    with pytest.raises(ValueError, match="frame"):
        token_attention(model, clip, 8, 3.0, 3.0)


def test_token_attention_of_a_light_model_includes_the_score_token():
    from uniformer.explain.video import token_attention

    model = uniformer.create_model("uniformer_xxs16_160_k400", **TINY, keep_ratios=((1.0,), (0.5,)),
                                   trade_offs=((1.0,), (0.5,)))
    att = token_attention(model, torch.randn(1, 3, 4, 64, 64), 1, 10.0, 50.0)
    assert att.grid == (2, 4, 4) and att.block == (2, 0)
    assert att.temporal_profile.sum() + att.score_token_share == pytest.approx(1.0, abs=1e-5)
    # stage 4 keeps half of its tokens: fused ones show the representative's row, weights still sum to 1
    last = token_attention(model, torch.randn(1, 3, 4, 64, 64), 1, 10.0, 50.0, block=(3, 0))
    assert last.grid == (2, 2, 2) and last.block == (3, 0) and last.score_token_share > 0
    assert last.temporal_profile.sum() + last.score_token_share == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="global MHRA"):
        token_attention(model, torch.randn(1, 3, 4, 64, 64), 1, 10.0, 50.0, block=(1, 0))


@pytest.mark.parametrize("layer", ["last", "stage3"])
def test_grad_cam_equals_pytorch_grad_cam(tiny_clip, layer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from uniformer.explain.video import grad_cam

    model, clip = tiny_clip
    ours = grad_cam(model, clip, target=7, layer=layer)
    assert ours.cam.shape == (8, 64, 64) and ours.cam.min() >= 0 and ours.cam.max() == pytest.approx(1, abs=1e-3)
    assert ours.raw.shape == ((4, 2, 2) if layer == "last" else (4, 4, 4)) and ours.target == 7
    target_layer = model.norm if layer == "last" else model.stages[2]
    with GradCAM(model=model, target_layers=[target_layer]) as cam:
        theirs = cam(input_tensor=clip, targets=[ClassifierOutputTarget(7)])  # (1, T, H, W)
    # their post-processing of our raw map: ReLU, scale to [0, 1], spline zoom, clip, scale again
    expected = scale_cam_image(np.maximum(scale_cam_image(np.maximum(ours.raw, 0)[None], (64, 64, 8)), 0))
    np.testing.assert_allclose(theirs, expected, rtol=1e-3, atol=1e-4)
    assert grad_cam(model, clip).target == int(model(clip).argmax())


def test_overlays_export_as_gif_and_mp4(tmp_path, tiny_clip):
    import av
    from PIL import Image

    from uniformer.explain.video import frame_strip, grad_cam, overlay_frames, sampling_timeline, write_overlay

    model, clip = tiny_clip
    frames = (torch.rand(8, 64, 64, 3) * 255).to(torch.uint8)
    over = overlay_frames(frames, grad_cam(model, clip).cam)
    assert over.shape == (8, 64, 64, 3) and over.dtype == np.uint8
    gif = write_overlay(over, tmp_path / "cam.gif", fps=4)
    with Image.open(gif) as im:
        assert im.n_frames == 8 and im.size == (64, 64) and im.info["duration"] == 250
    mp4 = write_overlay(over[:, :63, :63], tmp_path / "cam.mp4", fps=4)  # odd sizes are padded
    with av.open(str(mp4)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height) == ("h264", 64, 64)
        assert sum(1 for _ in c.decode(s)) == 8
    with pytest.raises(ValueError, match="gif"):
        write_overlay(over, tmp_path / "cam.avi")
    strip = frame_strip([[pattern(i, 160, 96) for i in range(4)]] * 2, [[str(i) for i in range(4)]] * 2,
                        ["clip 1", "clip 2"], boxes=[(10, 0, 106, 96)])
    assert strip.size[1] > 2 * 72 and strip.mode == "RGB"
    assert sampling_timeline(600, [[0, 100, 200], [300, 400]], fps=25).size[0] == 1200


# --- the app's Video tab, without a browser ------------------------------------------------------------------

@pytest.fixture
def tiny_app_models(monkeypatch):
    """The app loads tiny networks (8 frames, 64 px) with the registered preprocessing: fast handlers."""
    from app import models

    monkeypatch.setattr(models, "load_model", lambda name: models.LoadedModel(name, tiny(name, frames=8, size=64)))
    models.clear_cache()
    yield
    models.clear_cache()


def _click(x, y):
    import gradio as gr

    return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})


def test_app_classifies_explains_and_exports(tiny_app_models, videos):
    import gradio as gr

    from app import video_handlers as vh

    result = vh.classify_video(str(videos["long"]), vh.DEFAULT_VIDEO_MODEL, "2x3")
    assert len(result.label) == 5
    assert list(result.label.values()) == sorted(result.label.values(), reverse=True)
    # one row per top class and a last row of each view's own top-1; a column per view (2 clips x 3 crops)
    assert len(result.table) == 6 and list(result.table["class"])[-1] == "view's own top-1"
    assert len(result.table.columns) == 1 + 6 + 1 and result.table.columns[1].startswith("clip 1, left/top (frames ")
    assert "**Decode:**" in result.details and "**Inference:**" in result.details
    assert "mean 0.45 / std 0.225" in result.details
    assert result.strip.size[1] > 2 * 40 and result.timeline.size[0] == 1200
    session = result.state
    assert session.frames.shape == (8, 64, 64, 3) and session.clip.shape == (1, 3, 8, 64, 64)
    assert session.frame_indices == official_dense(600, 8, 8, 0, 2)  # 16x8 entry, clip shortened to 8 frames
    frame, overlay = vh.show_frame(session, 3)
    assert frame.size == (64, 64) and overlay is None
    assert vh.change_block(session, "3,0") == (gr.skip(),) * 4  # no token clicked yet: nothing to redraw
    frame, overlay, caption, session = vh.attend(session, 3, "2,0", _click(40, 20))
    assert overlay.size == (64, 64) and "own time step" in caption and session.attention.query[0] == 1
    assert "stage 3 block 1," in caption
    frame, overlay, caption, session = vh.change_block(session, "3,0")  # another block: the same token, redrawn
    assert "stage 4 block 1," in caption and session.attention.block == (3, 0) and session.attention.frame == 2
    assert overlay.size == (64, 64)
    frame, overlay = vh.show_frame(session, 8)
    assert overlay.size == (64, 64)
    gif, mp4, files, cam_caption = vh.explain_gradcam(session)
    assert Path(gif).suffix == ".gif" and Path(mp4).suffix == ".mp4" and files == [gif, mp4]
    assert Path(gif).stat().st_size > 0 and Path(mp4).stat().st_size > 0
    assert "Grad-CAM of" in cam_caption and session.target_label in cam_caption


def test_app_bad_files_give_clear_errors_and_the_next_request_works(tiny_app_models, bad_videos, videos, tmp_path):
    import gradio as gr

    from app import video_handlers as vh

    for kind, message in [("empty", "is empty (0 bytes)"), ("text", "is not a video file that FFmpeg can read"),
                          ("audio", "has no video stream (audio only)"), ("truncated", "it may be corrupt")]:
        with pytest.raises(gr.Error) as info:
            vh.classify_video(str(bad_videos[kind]), "uniformer_xxs16_160_k400", "1x1")
        assert info.value.message.startswith("This file cannot be used as a video: ") and message in info.value.message
    assert len(vh.classify_video(str(videos["short"]), "uniformer_xxs16_160_k400", "1x1").label) == 5
    with pytest.raises(gr.Error, match="none.mp4 contains no video frames"):
        vh.check_upload(str(_no_frames(tmp_path / "none.mp4")))  # said on upload, in words
    with pytest.raises(gr.Error, match="No video yet"):
        vh.classify_video(None, vh.DEFAULT_VIDEO_MODEL, "1x1")
    with pytest.raises(gr.Error, match="Classify a video first"):
        vh.explain_gradcam(None)
    with pytest.raises(gr.Error, match="crops must be 1"):
        vh.classify_video(str(videos["short"]), vh.DEFAULT_VIDEO_MODEL, "2x2")


def test_app_answers_a_one_frame_video_with_a_note(tiny_app_models, tmp_path):
    """/classify_video's handler on a one-frame video: the prediction, the note, and explanations."""
    from app import video_handlers as vh

    one = write_indexed_video(tmp_path / "one.mp4", 1)
    result = vh.classify_video(str(one), vh.DEFAULT_VIDEO_MODEL, "4x1")
    assert len(result.label) == 5 and len(result.table) == 6 and len(result.table.columns) == 1 + 4 + 1
    assert ("\u26a0\ufe0f This video has 1 frame: the clip repeats it, as the official index rule does; motion cannot "
            "be judged.") in result.details
    assert "160\u00d796, 1 frame, 25.00 fps" in result.details
    assert result.state.frame_indices == [0] * 8 and result.state.fps == 25.0
    assert result.strip is not None and result.timeline is not None
    frame, overlay, caption, session = vh.attend(result.state, 5, "2,0", _click(30, 30))
    assert overlay.size == (64, 64) and "own time step" in caption
    gif, mp4, files, cam_caption = vh.explain_gradcam(session)
    assert probe_video(mp4).num_frames == 8 and "played at 25.0 fps" in cam_caption


def test_app_examples_model_info_and_layout(tmp_path):
    from app import video_handlers as vh
    from app.builder import build_app

    written = vh.write_video_examples(tmp_path)
    assert list(written) == ["bikes", "bigbuckbunny", "carphone"]
    for name, path in written.items():
        assert probe_video(path).num_frames >= 100 and name in vh.VIDEO_EXAMPLES_CREDIT.replace("_pristine", "")
    info = vh.model_info("uniformer_small_k400_16x8")
    assert "mean 0.45, std 0.225" in info and "1 every 8 frames" in info and "4 clips \u00d7 1 crop" in info
    assert "segment" in vh.model_info("uniformer_small_sthv2_16_prek600")
    light = vh.block_choices("uniformer_xxs16_160_k400")  # depths (2, 5, 8, 2): every stage-3/4 hourglass block
    assert light[0] == ("stage 3, block 8 (finest global grid)", "2,7") and len(light) == 10
    config = build_app().get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    assert by_id["video-input"]["type"] == "video"
    assert [v for _, v in by_id["video-model"]["props"]["choices"]][0] == "uniformer_base_k400_16x4"  # Hub first
    assert by_id["video-model"]["props"]["value"] == vh.startup_video_model()[0]  # offline default: test_digits_app
    assert [v for _, v in by_id["video-views"]["props"]["choices"]] == ["1x1", "1x3", "3x1", "4x1", "3x3", "4x3"]
    assert "classify_video" in {d.get("api_name") for d in config["dependencies"]}
    # the examples: a gallery of posters (the middle frame) named under each, in the order of the clips
    examples = by_id["video-examples"]["props"]
    assert examples["layout"] == "gallery" and len(examples["samples"]) == 9
    first = examples["samples"][0][0]
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', first)
    order = ["moving digits 0 left", "bikes"] if vh.startup_video_model()[0] == vh.OFFLINE_VIDEO_MODEL else ["bikes"]
    assert f"<figcaption>{order[0]}</figcaption>" in first
