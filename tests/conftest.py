"""Shared fixtures: the tiny model (random weights, offline) and the shared real clips when present."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Callable

import pytest
import torch

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


@pytest.fixture
def tiny_model():
    from tav.models import load_base_model

    return load_base_model("tiny")


@pytest.fixture
def shared_video():
    """A real clip from ../shared/videos; skips where a clone has no ../shared (a user's machine)."""
    path = SHARED_VIDEOS / "man-surfing.mp4"
    if not path.is_file():
        pytest.skip("../shared/videos/man-surfing.mp4 is not here (only the project's machines have it)")
    return path


MAX_TEST_PROCESSES = 4  # each holds torch and starts subprocesses of its own: memory, not cores, bounds more


def pytest_xdist_auto_num_workers(config) -> int:
    return max(1, min(os.cpu_count() or 1, MAX_TEST_PROCESSES))


# Test files run whole in one test process, in their order (pyproject: --dist loadfile; test_readme's lines depend
# on the lines before them), and the processes take files in this order (--no-loadscope-reorder: pytest-xdist
# would start the files with the most tests first). The slowest files start first, so that the processes finish
# together; a process takes a second file at once when its first has one test.
SLOWEST_FIRST = ["test_world_search.py", "test_readme.py", "test_sweeper.py", "test_entrypoints.py",
                 "test_bench_sweep.py", "test_export.py", "test_world_models.py", "test_seed_screen_study.py",
                 "test_export_base.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(autouse=True, scope="session")
def _threads_split_between_test_processes():
    """Each test process (and the entrypoints it starts) computes on its share of the cores, unless
    OMP_NUM_THREADS says otherwise: oversubscribed OpenMP threads spin and slow every process down
    (analysis/PERF.md, round 12)."""
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // processes))
    torch.set_num_threads(threads)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", str(threads))
        yield


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _digest_cache(tmp_path_factory):
    """Weight digests are remembered in a folder of the test session's (and its subprocesses'), not the user's."""
    from tav.digests import CACHE_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("tav_cache")))
        yield


# One small study (3 trials, 2 seeds, 4 frames of 32x32) built once for the tests that only read a study
# (compare, export); each module gets its own copy of the database, so one may add trials to it. It runs with a
# W&B key that no server accepts (and here without network): every run must fall back to offline.
REJECTED_WANDB_KEY = "0" * 40
SMALL_STUDY = ["hydra.sweeper.n_trials=3", "data.n_frames=4", "data.height=32", "data.width=32",
               "validation.every_n_steps=2", "validation.inversion_steps=2", "validation.sampling_steps=2",
               "validation.seeds=[0,1]", "validation.batch_size=1", "train.max_steps=int(interval(2,4))",
               "logger=wandb", "metrics.scorer.flow_threads=1",
               # the plumbing on the fastest model, ranked as with real models: CLIP objectives, a Pareto front
               "model=tiny", "metrics=tiny", "hydra.sweeper.single_objective=false"]


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> Path:
    import sys

    import preloaded

    sweep_dir = tmp_path_factory.mktemp("small_study")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "WANDB_API_KEY": REJECTED_WANDB_KEY}
    done = preloaded.run([sys.executable, "sweep.py", "-m", *SMALL_STUDY, f"hydra.sweep.dir={sweep_dir}"], env=env,
                         timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep_dir / "console.txt").write_text(done.stdout + done.stderr)
    return sweep_dir


@pytest.fixture(scope="module")
def study_storage(small_sweep, tmp_path_factory) -> str:
    """A SQLite URL of this module's copy of the small study."""
    import shutil

    copy = tmp_path_factory.mktemp("study_copy") / "study.db"
    shutil.copyfile(small_sweep / "study.db", copy)
    return f"sqlite:///{copy}"


def _postgres_binaries() -> tuple[str, str] | None:
    import glob
    import shutil

    for folder in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb, pg_ctl = shutil.which("initdb", path=folder), shutil.which("pg_ctl", path=folder)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


def _becoming(owner: pwd.struct_passwd) -> Callable[[], None]:
    """A subprocess's preexec_fn that runs it as `owner`."""
    def become() -> None:
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)
    return become


@pytest.fixture
def postgres_url():
    """A throwaway local PostgreSQL server (its own data folder, a Unix socket, no TCP) and its URL; skips where
    PostgreSQL or the psycopg driver is not installed. PostgreSQL refuses to run as root, so under root the
    server runs as the `postgres` user that Debian's package creates."""
    import shutil
    import subprocess
    import tempfile

    pytest.importorskip("psycopg", reason="the PostgreSQL driver (pip install 'psycopg[binary]') is not installed")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed (apt-get install postgresql)")
    initdb, pg_ctl = binaries
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    folder = Path(tempfile.mkdtemp(prefix="tav-pg-"))  # not under pytest's 0700 tmp: the server's user must reach it
    if owner:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, socket = folder / "data", folder
    run = dict(preexec_fn=_becoming(owner) if owner else None, capture_output=True, text=True, timeout=120, check=True)
    subprocess.run([initdb, "-D", str(data), "-U", "tav", "--auth=trust", "--no-sync"], **run)
    subprocess.run([pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "start",
                    "-o", f"-k {socket} -c listen_addresses='' -c fsync=off"], **run)
    try:
        yield f"postgresql://tav@/postgres?host={socket}"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **{**run, "check": False})
        shutil.rmtree(folder, ignore_errors=True)
