"""Atomic writes: a full disk says so and keeps the previous file; stale temporaries are removed."""
import errno
import os

import pytest
import torch

from utils.atomic import DiskFullError, atomic_write, atomic_write_text, remove_stale_temporaries
from utils.checkpoint import save_checkpoint


def _full_disk(monkeypatch):
    """Every write through a file opened by utils.atomic fails with ENOSPC, as on a full file system."""
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr("utils.atomic.os.fdopen", lambda fd, mode, **kw: FullFile(real_fdopen(fd, mode, **kw)))


def test_disk_full_during_a_checkpoint_save_says_so_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "model_latest.pth", {"w": torch.ones(3)})
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*model_latest\.pth: "
                                            r"the previous model_latest\.pth is unchanged"):
        save_checkpoint(path, {"w": torch.zeros(1000)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model_latest.pth"]  # no temporary left behind
    with pytest.raises(DiskFullError, match="scores.txt was not written"):
        atomic_write_text(tmp_path / "scores.txt", "x")


def test_stale_temporaries_of_interrupted_saves_are_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "cfg.json") as f:
            f.write("{}")
            raise RuntimeError("interrupted")
    stale = [tmp_path / ".model_latest.pth.ab_c9xyz.tmp", tmp_path / ".scores.json.0123abcd.tmp"]
    keep = [tmp_path / "model_latest.pth", tmp_path / ".hidden.tmp", tmp_path / "notes.tmp"]
    for path in stale + keep:
        path.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []
