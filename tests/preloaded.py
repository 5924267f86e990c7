"""`python <script> <args>` in a process forked from one that has already imported the entrypoints (the standard
library's forkserver with preloaded modules), for tests where the interpreter's start is not the point.

A fresh interpreter spends 10-15 s importing torch, diffusers and transformers on a 2-core host before it does
anything, and the suite starts dozens (analysis/PERF.md, round 13). The README's lines and the demo still run in
fresh interpreters, exactly as typed (tests/test_readme.py, tests/test_entrypoints.py).

The child runs the script as `python` would (`__main__`, `sys.argv`, `sys.path[0]`, its own working folder,
environment and standard streams, exit code, atexit handlers); tests/test_entrypoints.py checks that a command gives
the same exit code and output both ways. What a library reads from the environment while it is imported (e.g.
HF_HUB_OFFLINE) is the test process's: a test that sets such a variable starts a fresh interpreter. The server only
imports and never computes: GNU OpenMP hangs a child forked after its parent's first parallel region, so forking a
test process itself would not do.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The entrypoints, and the modules they import only once a run starts (trials, scoring, W&B).
PRELOAD = ["train", "sweep", "generate", "export", "analysis.compare", "sweeps.live_trial", "tav.metrics.scorer",
           "tav.tracking.wandb_run", "tav.tracking.study_run"]

_server = multiprocessing.get_context("forkserver")
_server.set_forkserver_preload(PRELOAD)


def _run_script(script: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):  # the server's OpenMP read the variable when it loaded; a child's may differ
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(cwd, script).resolve().parent))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if isinstance(stop.code, int) or stop.code is None:
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs at its exit (logging's flush, W&B's teardown)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Started:
    """A running command: its `pid`, `poll()` and `wait()` as subprocess.Popen gives them, and its output."""

    def __init__(self, argv: list[str], cwd: Path | str, env: dict[str, str] | None):
        assert argv[0] == sys.executable, argv
        self.argv = argv
        self._folder = tempfile.TemporaryDirectory(prefix="preloaded-")
        self._out, self._err = (os.path.join(self._folder.name, name) for name in ("stdout", "stderr"))
        args = (argv[1], argv[2:], str(cwd), dict(os.environ if env is None else env), self._out, self._err)
        self._process = _server.Process(target=_run_script, args=args)
        self._process.start()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        self._process.join(timeout)
        timed_out = self._process.exitcode is None
        if timed_out:
            self._process.kill()
            self._process.join()
        out, err = self._output()
        self._folder.cleanup()
        if timed_out:
            raise subprocess.TimeoutExpired(self.argv, timeout, out, err)
        return subprocess.CompletedProcess(self.argv, self._process.exitcode, out, err)

    def _output(self) -> tuple[str, str]:
        return tuple(Path(path).read_text(errors="replace") if os.path.exists(path) else ""
                     for path in (self._out, self._err))


def start(argv: list[str], cwd: Path | str = ROOT, env: dict[str, str] | None = None) -> Started:
    """subprocess.Popen(argv, cwd=cwd, env=env) for `argv = [sys.executable, script, *args]`, output captured."""
    return Started(argv, cwd, env)


def run(argv: list[str], cwd: Path | str = ROOT, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout), forked preloaded."""
    return start(argv, cwd, env).wait(timeout)
