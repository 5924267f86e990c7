"""sha256 of weight files, remembered across processes while a file keeps its path, size and modification time.

A run, a sweep trial, an export and a render each identify the base model by its weights' hash, and reading
SD-1.5's ~4 GB took 4.1-4.2 s of every run and screen on an H100 host (analysis/PERF.md round 10). The digests
live in one JSON file, `$TAV_CACHE_DIR/sha256.json` (default ~/.cache/tav-sweep); a file that changed in size,
modification time or inode is read again, and a cache that cannot be read or written only costs the reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

CACHE_ENV = "TAV_CACHE_DIR"


def cache_file() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tav-sweep") / "sha256.json"


def file_sha256(path: Path | str) -> str:
    """The sha256 hex digest of a file's bytes."""
    path = Path(path).resolve()
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    known = _read_cache().get(str(path))
    if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
        return known["sha256"]
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    _remember(str(path), {"stamp": stamp, "sha256": digest})
    return digest


def files_sha256(files: list[Path], root: Path) -> str:
    """One digest for a folder's files: each file's path below `root` and its sha256, in the given order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def _read_cache() -> dict:
    try:
        cache = json.loads(cache_file().read_text())
    except (OSError, RuntimeError, ValueError):  # RuntimeError: no home folder to find
        return {}
    return cache if isinstance(cache, dict) else {}


def _remember(key: str, entry: dict) -> None:
    """Add one digest; written whole to a temporary file and renamed, so a reader never sees half a file (two
    processes writing at once may drop one of their entries: it is read again next time)."""
    written = None
    try:
        path = cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = {**_read_cache(), key: entry}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
            written = Path(handle.name)
            json.dump(cache, handle)
        os.replace(written, path)
    except (OSError, RuntimeError):
        if written:
            written.unlink(missing_ok=True)
