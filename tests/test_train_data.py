"""uniformer.train.data: image folders, CSV video lists, digits, moving digits, seeded sampling; bad data."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from uniformer.train.data import (MOTIONS, DatasetError, DigitsDataset, EpochSampler, ImageFolderDataset,
                                  MovingDigitsDataset, SeededSamples, ShardSampler, VideoListDataset,
                                  load_digits_split, render_digit)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the CI machine's cores are shared, and oversubscribed OpenMP threads
    make these tiny models several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _folder(root, spec: dict[str, int]):
    """root/<class>/<i>.png with a small coloured image each."""
    for name, n in spec.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (10, 8), (30 * i, 100, 200)).save(root / name / f"{i}.png")
    return root


def test_image_folder_classes_samples_and_transform(tmp_path):
    _folder(tmp_path, {"cat": 2, "ant": 3})
    (tmp_path / "cat" / "notes.txt").write_text("not an image, not an image extension: ignored")
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"")
    ds = ImageFolderDataset(tmp_path, transform=lambda im: torch.tensor(im.size))
    assert ds.classes == ["ant", "cat"] and len(ds) == 5
    assert ds.targets == [0, 0, 0, 1, 1]
    x, y = ds[4]
    assert x.tolist() == [10, 8] and y == 1
    ds.verify()


def test_image_folder_unreadable_file_named(tmp_path):
    _folder(tmp_path, {"a": 1, "b": 1})
    (tmp_path / "b" / "broken.jpg").write_text("this is text")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(DatasetError, match=r"unreadable training image .*broken\.jpg"):
        ds[2]
    with pytest.raises(DatasetError, match=r"1 unreadable file"):
        ds.verify()


@pytest.mark.parametrize("spec, match", [
    ({"only": 3}, "only 1 class"),
    ({"a": 2, "empty": 0}, r"class folder\(s\) \['empty'\] .* hold no image files"),
    ({}, "has no class sub-folders"),
])
def test_image_folder_bad_layouts(tmp_path, spec, match):
    _folder(tmp_path, spec)
    with pytest.raises(DatasetError, match=match):
        ImageFolderDataset(tmp_path)


def test_image_folder_missing_and_foreign_val_classes(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")
    _folder(tmp_path / "val", {"a": 1, "zebra": 1})
    with pytest.raises(DatasetError, match=r"\['zebra'\] that are not training classes"):
        ImageFolderDataset(tmp_path / "val", classes=["a", "b"])


def _csv(tmp_path, text: str, files=("a.mp4", "b.mp4", "c.mp4")):
    for f in files:
        (tmp_path / f).write_bytes(b"\x00")
    path = tmp_path / "list.csv"
    path.write_text(text)
    return path


def test_csv_video_list_names_and_indices(tmp_path):
    ds = VideoListDataset(_csv(tmp_path, "path,label\na.mp4,walk\nb.mp4,run\n\nc.mp4,walk\n"),
                          decode=lambda p: torch.full((3, 2, 4, 4), float(p.name[0] == "b")))
    assert ds.classes == ["run", "walk"] and ds.targets == [1, 0, 1]
    clip, label = ds[1]
    assert clip.shape == (3, 2, 4, 4) and clip.max() == 1 and label == 0
    ds = VideoListDataset(_csv(tmp_path, "a.mp4,1\nb.mp4,0\n"), decode=lambda p: torch.zeros(1))
    assert ds.classes == ["0", "1"] and ds.targets == [1, 0]


@pytest.mark.parametrize("text, match", [
    ("a.mp4,walk\nb.mp4,run,extra\n", r"list\.csv:2: expected 2 columns"),
    ("a.mp4,walk\nmissing.mp4,run\n", r"list\.csv:2: video file .*missing\.mp4 does not exist"),
    ("a.mp4,walk\nb.mp4,\n", r"list\.csv:2: empty path or label"),
    ("a.mp4,walk\nb.mp4,3\n", r"list\.csv:2: labels mix class names and class indices"),
    ("a.mp4,1\nb.mp4,1\n", r"only 1 class"),
    ("path,label\n", "has no rows"),
])
def test_csv_mislabelled_rows_named(tmp_path, text, match):
    with pytest.raises(DatasetError, match=match):
        VideoListDataset(_csv(tmp_path, text))


def test_csv_labels_checked_against_training_classes(tmp_path):
    path = _csv(tmp_path, "a.mp4,walk\nb.mp4,swim\n")
    with pytest.raises(DatasetError, match=r"list\.csv:2: unknown label 'swim'"):
        VideoListDataset(path, classes=["run", "walk"])
    with pytest.raises(DatasetError, match=r"list\.csv:2: label 7 is out of range 0\.\.1"):
        VideoListDataset(_csv(tmp_path, "a.mp4,1\nb.mp4,7\n"), classes=["x", "y"])


def test_csv_decoding_errors_name_the_file(tmp_path):
    ds = VideoListDataset(_csv(tmp_path, "a.mp4,x\nb.mp4,y\n"))  # 1-byte files: not videos
    with pytest.raises(DatasetError, match=r"unreadable training video .*a\.mp4"):
        ds[0]


def test_csv_decodes_real_video_with_the_pyav_sampler(tmp_path):
    import av

    for name, shift in (("l.mp4", -1), ("r.mp4", 1)):
        with av.open(str(tmp_path / name), "w") as out:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
            for t in range(12):
                frame = np.zeros((40, 48, 3), np.uint8)
                frame[10:20, 20 + shift * t:30 + shift * t] = 255
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    (tmp_path / "v.csv").write_text("l.mp4,left\nr.mp4,right\n")
    ds = VideoListDataset(tmp_path / "v.csv", num_frames=4, size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    clip, label = ds[1]
    assert clip.shape == (3, 4, 32, 32) and label == 1 and -1.01 <= clip.min() and clip.max() <= 1.01
    cols = (clip[0] > 0).float().sum((0, 1)).nonzero()  # bright columns over time
    assert cols.numel() > 0
    train = VideoListDataset(tmp_path / "v.csv", num_frames=4, size=32, train=True)
    assert SeededSamples(train, 0)[(0, 3)][0].shape == (3, 4, 32, 32)


def test_digits_split_is_deterministic_stratified_and_disjoint():
    xtr, ytr = load_digits_split("train")
    xva, yva = load_digits_split("val")
    assert xtr.shape == (1437, 8, 8) and xva.shape == (360, 8, 8) and xtr.max() == 16
    assert np.bincount(yva).min() >= 35  # stratified: ~36 per class
    rows = {r.tobytes() for r in xtr}
    assert sum(r.tobytes() in rows for r in xva) < 5  # (a few digits are exact duplicates in the data)
    assert np.array_equal(load_digits_split("val")[0], xva)
    with pytest.raises(ValueError):
        load_digits_split("test")
    img = render_digit(xva[0])
    assert img.size == (8, 8) and img.mode == "RGB"
    a = np.asarray(img)[..., 0]
    assert a[xva[0] == 0].min() == 255 and a[xva[0] == 16].max() == 0  # dark ink on white
    ds = DigitsDataset("val")
    assert len(ds) == 360 and ds.classes[3] == "3" and ds[0][1] == yva[0]


def test_moving_digits_label_only_orders_the_frames():
    ds = MovingDigitsDataset("val", length=12, num_frames=6, size=24, digit_size=8, mean=(0,) * 3, std=(1,) * 3)
    assert ds.classes == list(MOTIONS) and ds.targets[:7] == [0, 1, 2, 3, 4, 5, 0]
    clip, label = ds[4]
    assert clip.shape == (3, 6, 24, 24) and label == 4
    digit, positions, phase = ds.clip_parts(0)
    clips = [ds.render(digit, positions, k, phase) for k in range(len(MOTIONS))]
    frames = [sorted(c[0, t].numpy().tobytes() for t in range(6)) for c in clips]
    assert all(f == frames[0] for f in frames)  # the same multiset of frames for every class
    assert all(torch.allclose(c.mean(1), clips[0].mean(1), atol=1e-6) for c in clips)  # so the same average

    glyph = ds.digits[digit]  # (8, 8) ink of the digit; its centroid inside its box
    g = torch.arange(8.0)
    gx, gy = (glyph.sum(0) * g).sum() / glyph.sum(), (glyph.sum(1) * g).sum() / glyph.sum()

    def corners(c):
        """Top-left corner (x, y) of the digit in every frame, from the ink centroid."""
        w = (c[0] - c[0].min()).clamp(min=0)  # (T, H, W), background 0
        grid = torch.arange(24.0)
        m = w.sum((1, 2))
        return (w.sum(1) * grid).sum(1) / m - gx, (w.sum(2) * grid).sum(1) / m - gy

    x, _ = corners(clips[MOTIONS.index("right")])
    assert (x.diff() >= -1e-3).all() and x[-1] > x[0]
    x, _ = corners(clips[MOTIONS.index("left")])
    assert (x.diff() <= 1e-3).all() and x[-1] < x[0]
    _, y = corners(clips[MOTIONS.index("up")])
    assert (y.diff() <= 1e-3).all() and y[-1] < y[0]
    for motion, sign in (("anticlockwise", 1), ("clockwise", -1)):
        x, y = corners(clips[MOTIONS.index(motion)])
        c = (24 - 8) / 2  # angles of the corners about the centre of their range, screen y downwards
        angle = (sign * (torch.atan2(-(y - c), x - c) - phase)) % (2 * torch.pi)
        assert (angle.diff() >= -1e-3).all(), motion


def test_moving_digits_fixed_val_clips_and_fresh_train_clips():
    val = SeededSamples(MovingDigitsDataset("val", length=6, num_frames=4, size=16, digit_size=6), seed=0)
    assert torch.equal(val[(2, 0)][0], val[(2, 5)][0])
    train = SeededSamples(MovingDigitsDataset("train", length=6, num_frames=4, size=16, digit_size=6), seed=0)
    assert torch.equal(train[(2, 1)][0], train[(2, 1)][0])
    assert not torch.equal(train[(2, 1)][0], train[(2, 2)][0])  # resampled every epoch


def test_seeded_samples_are_pure_and_leave_global_generators_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3) + random.random() + np.random.rand()

    ds = SeededSamples(Noisy(), seed=7)
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    a = ds[(1, 2)]
    state = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    b = ds[(1, 2)]
    assert torch.equal(a, b) and not torch.equal(a, ds[(1, 3)]) and not torch.equal(a, ds[(2, 2)])
    assert torch.equal(state[0], torch.get_rng_state()) and state[1] == random.getstate()
    assert np.array_equal(state[2], np.random.get_state()[1])
    assert SeededSamples(Noisy(), seed=8)[(1, 2)].tolist() != a.tolist()


def test_epoch_sampler_shards_are_the_global_batches_and_skip_resumes():
    data = list(range(16))
    single = EpochSampler(data, 1, 0, seed=3)
    single.set_position(2)
    order = [i for i, _ in single]
    shards = []
    for rank in range(2):
        s = EpochSampler(data, 2, rank, seed=3)
        s.set_position(2)
        shards.append([i for i, e in s])
        assert all(e == 2 for _, e in s)
    # global step k (batch 4 = 2 per rank): the union of the ranks' k-th batches = the single-process batch
    for k in range(4):
        assert sorted(shards[0][2 * k:2 * k + 2] + shards[1][2 * k:2 * k + 2]) == sorted(order[4 * k:4 * k + 4])
    single.set_position(2, skip=5)
    assert [i for i, _ in single] == order[5:] and len(single) == 11
    assert [k for k in ShardSampler(5, 2, 1)] == [(1, 0), (3, 0)]
