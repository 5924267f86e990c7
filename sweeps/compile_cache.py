"""Where a sweep keeps what was compiled for it: in its own folder, beside the study, so that it outlives the machine.

A sweep worker's first trial compiles the training step (~100 s on an H100 from a cold start); a process that finds
the graphs in this folder loads them: a resumed sweep's first step took 20.7 s instead of 98.8 s on an H100
(analysis/PERF.md round 25). torch keeps its graphs in /tmp, gone with a machine that comes and goes. The CUDA
driver's JIT cache (cuDNN's attention kernels, ~10 s to build cold, round 18) goes beside them.

The driver reads CUDA_CACHE_PATH (and CUDA_VISIBLE_DEVICES) once, when it starts, and a CUDA availability check
starts it: importing diffusers makes one (torch.accelerator.is_available), before a sweep's config names its folder.
So `sweep.py` turns on torch's NVML-based check (PYTORCH_NVML_BASED_CUDA_CHECK) before it imports torch: checks then
ask NVML and leave the driver to start at the first real CUDA call, after the sweeper has set the variables (round
26: with the check on, a folder named after `import sweep` received the kernels on an H200; without it the folder
was never made).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

# Inductor keeps Triton's kernels under its own folder, so this one variable moves all of torch.compile's cache.
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"
CUDA_JIT_CACHE = "CUDA_CACHE_PATH"
SUBFOLDERS = {INDUCTOR_CACHE: "inductor", CUDA_JIT_CACHE: "cuda"}


def torch_default() -> str:
    """The value torch itself puts in TORCHINDUCTOR_CACHE_DIR when nobody set it. Importing torch._dynamo (diffusers
    does) writes inductor's default folder into the variable, so that value does not mean a user chose it. The one
    place that reaches into torch's private module; inductor reads the variable again at every use."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return os.path.abspath(default_cache_dir())


def use_compile_cache(folder: Path | None, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Point torch.compile's cache and the CUDA driver's JIT cache at subfolders of `folder`, for this process and
    the workers it starts, unless the environment names other folders (the user's choice stands); `folder` None
    leaves the defaults. Returns each variable that is set, with its folder."""
    if folder is not None:
        for variable, subfolder in SUBFOLDERS.items():
            if environ.get(variable) in (None, torch_default() if variable == INDUCTOR_CACHE else None):
                environ[variable] = str(Path(folder).resolve() / subfolder)
    return {variable: environ[variable] for variable in SUBFOLDERS if variable in environ}
