"""Motion fidelity without learned weights: warp error under the source's optical flow, and VBench flicker.

Frames here are float (F, H, W, 3) in [0, 1] (see frames.unit_frames).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# OpenCV's documented Farneback settings: pyramid scale, levels, window, iterations, poly_n, poly_sigma, flags.
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)


def flicker(frames: torch.Tensor) -> float:
    """VBench temporal flickering: (255 - mean |frame t+1 - frame t| in 0..255) / 255; a static clip is 1.0."""
    return 1.0 - (frames[1:] - frames[:-1]).abs().mean().item()


def source_flows(source: torch.Tensor, size: tuple[int, int], threads: int = 8) -> torch.Tensor:
    """Backward Farneback flows of the source resized to `size` (H, W): (F-1, H, W, 2) in pixels (x, y).

    flows[t] maps frame t+1 back into frame t: source[t+1](p) ~ source[t](p + flows[t](p)).
    """
    height, width = size
    pixels = (source * 255).round().to(torch.uint8).cpu().numpy()
    gray = [cv2.cvtColor(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            for f in pixels]

    def backward_flow(t: int) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(gray[t + 1], gray[t], None, *FARNEBACK)

    # OpenCV releases the GIL, so the frame pairs run in parallel.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        flows = list(pool.map(backward_flow, range(len(gray) - 1)))
    return torch.from_numpy(np.stack(flows))


def warp_error(frames: torch.Tensor, flows: torch.Tensor) -> float:
    """Mean |frame t+1 - frame t warped by the source's flow| over RGB in [0, 1], over the pixels whose flow
    stays inside the frame."""
    count, height, width, _ = frames.shape
    if flows.shape != (count - 1, height, width, 2):
        raise ValueError(f"flows of shape {tuple(flows.shape)} do not fit {count} frames of {height}x{width}")
    flows = flows.to(frames.device, torch.float32)
    ys, xs = torch.meshgrid(torch.arange(height, device=frames.device, dtype=torch.float32),
                            torch.arange(width, device=frames.device, dtype=torch.float32), indexing="ij")
    x, y = xs + flows[..., 0], ys + flows[..., 1]
    inside = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).unsqueeze(1)
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    earlier = frames[:-1].permute(0, 3, 1, 2)
    warped = F.grid_sample(earlier, grid, mode="bilinear", padding_mode="border", align_corners=True)
    error = (frames[1:].permute(0, 3, 1, 2) - warped).abs() * inside
    return (error.sum() / (inside.sum() * 3).clamp(min=1)).item()
