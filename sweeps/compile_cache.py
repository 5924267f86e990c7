"""Where a sweep keeps what it compiled: in its own folder, beside the study, so that the graphs outlive the machine.

A sweep worker's first trial compiles the training step (~100 s on an H100 from a cold start, analysis/PERF.md round
24) and builds cuDNN's attention kernels (~10 s, round 18); a process that finds them cached loads them in ~20 s.
torch keeps its graphs in /tmp and the driver its kernels in the home folder, both gone with a machine that comes and
goes, so a resumed sweep or a worker on a fresh machine paid it all again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

# Each cache's environment variable -> its subfolder. Inductor keeps Triton's kernels under its own folder.
CACHE_VARIABLES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "CUDA_CACHE_PATH": "cuda"}


def torch_default(variable: str) -> str | None:
    """The value torch itself puts in `variable` when nobody set it. Importing torch._dynamo (diffusers does)
    writes inductor's default folder into TORCHINDUCTOR_CACHE_DIR, so that value does not mean a user chose it.
    The one place that reaches into torch's private module; inductor reads the variable again at every use."""
    if variable != "TORCHINDUCTOR_CACHE_DIR":
        return None
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return os.path.abspath(default_cache_dir())


def use_compile_cache(folder: Path | None, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Point torch.compile's cache and the CUDA driver's JIT cache at subfolders of `folder`, for this process and
    the workers it starts, unless the environment names another one (the user's choice stands); `folder` None
    leaves both to their defaults. Call before CUDA starts: the driver reads its variable once. Returns each
    variable's value in effect."""
    if folder is not None:
        for variable, subfolder in CACHE_VARIABLES.items():
            if environ.get(variable) in (None, torch_default(variable)):
                environ[variable] = str(Path(folder).resolve() / subfolder)
    return {variable: environ[variable] for variable in CACHE_VARIABLES if variable in environ}
