import hashlib
import json
import os

import pytest

from tav import digests


def test_a_digest_is_the_files_sha256_and_is_read_again_only_when_the_file_changes(tmp_path, monkeypatch):
    weights = tmp_path / "unet.safetensors"
    weights.write_bytes(b"weights" * 1000)
    assert digests.file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()

    reads = []
    real_digest = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a, **k: reads.append(1) or real_digest(*a, **k))
    assert digests.file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert reads == []  # remembered: another process gets it from the cache file too
    assert str(weights.resolve()) in json.loads(digests.cache_file().read_text())

    weights.write_bytes(b"other weights" * 1000)
    assert digests.file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert reads == [1]
    stat = weights.stat()
    weights.write_bytes(b"OTHER weights" * 1000)  # same size: the modification time tells it apart
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert digests.file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert reads == [1, 1]


def test_a_folder_digest_names_its_files_and_their_contents(tmp_path):
    for name in ("unet/model.safetensors", "vae/model.safetensors"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    files = sorted(tmp_path.rglob("*.safetensors"))
    first = digests.files_sha256(files, tmp_path)
    assert digests.files_sha256(files, tmp_path) == first
    (tmp_path / "vae/model.safetensors").write_bytes(b"changed")
    assert digests.files_sha256(files, tmp_path) != first


@pytest.mark.parametrize("cache", ["a file where the folder should be", "not json", "an entry of the wrong shape"])
def test_a_cache_that_cannot_be_used_costs_only_the_reading(tmp_path, monkeypatch, cache):
    weights = tmp_path / "model.ckpt"
    weights.write_bytes(b"checkpoint")
    if cache != "a file where the folder should be":
        monkeypatch.setenv(digests.CACHE_ENV, str(tmp_path / "cache"))
        digests.cache_file().parent.mkdir()
        digests.cache_file().write_text("{not json" if cache == "not json" else
                                        json.dumps({str(weights.resolve()): ["not", "a", "record"]}))
    else:
        (tmp_path / "blocked").write_text("")
        monkeypatch.setenv(digests.CACHE_ENV, str(tmp_path / "blocked"))
    for _ in range(2):
        assert digests.file_sha256(weights) == hashlib.sha256(b"checkpoint").hexdigest()
