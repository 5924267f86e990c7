import numpy as np
import pytest
import torch

from tav.data.demo import DEMO_VIDEO, demo_frames
from tav.data.video import load_clip, read_frames, resize_center_crop


def test_demo_clip_ships_and_reads():
    frames = read_frames(DEMO_VIDEO, n_frames=24)
    assert frames.shape == (24, 64, 64, 3) and frames.dtype == torch.uint8
    # H.264 is lossy: the decoded clip stays close to the frames the code draws
    assert (frames.float() - torch.from_numpy(demo_frames()).float()).abs().mean() < 6


def test_sampling_by_start_and_stride_picks_those_frames():
    every = read_frames(DEMO_VIDEO, n_frames=24)
    picked = read_frames(DEMO_VIDEO, n_frames=5, start=2, stride=4)
    assert torch.equal(picked, every[[2, 6, 10, 14, 18]])


def test_too_short_clip_says_what_it_found():
    with pytest.raises(ValueError, match="has 24 frames but start=0, stride=2, n_frames=13 needs 25"):
        read_frames(DEMO_VIDEO, n_frames=13, stride=2)


def test_unreadable_and_missing_files_are_clear_errors(tmp_path, capfd):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="cannot read video .*bad.mp4.*re-encode"):
        read_frames(bad, n_frames=2)
    assert capfd.readouterr().err == ""  # FFmpeg's and decord's own lines are not printed beside the error
    with pytest.raises(FileNotFoundError, match="does not exist; set data.video"):
        read_frames(tmp_path / "none.mp4", n_frames=2)


def test_resize_center_crop_keeps_aspect_ratio():
    wide = np.zeros((1, 50, 100, 3), np.uint8)
    wide[:, :, 25:75] = 255  # a centred white square of 50x50 in a 2:1 frame
    out = resize_center_crop(torch.from_numpy(wide), 20, 20)
    assert out.shape == (1, 20, 20, 3)
    assert out.float().mean() > 250  # the crop is the square itself, not a squashed frame with black sides


def test_resize_center_crop_upscales_small_frames():
    out = resize_center_crop(torch.full((2, 8, 16, 3), 7, dtype=torch.uint8), 32, 32)
    assert out.shape == (2, 32, 32, 3) and int(out[0, 0, 0, 0]) == 7


def test_real_clip_loads_at_the_official_shape(shared_video):
    clip = load_clip(shared_video, n_frames=24, height=512, width=512)
    assert clip.shape == (24, 512, 512, 3)
    assert clip.float().std() > 10
