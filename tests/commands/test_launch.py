"""The project's accelerate launch configs run several CPU processes and gather without duplicates.

Multi-process tests mean the CPU (gloo ranks): they hide any GPU with ``CUDA_VISIBLE_DEVICES=""``, since two ranks
on a one-GPU machine would each claim a GPU of their own.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # environment of a subprocess that must not see a GPU


def free_port() -> int:
    """A TCP port nobody listens on now (so parallel launches on one machine do not collide on 29500)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("n_items", [10, 11])
def test_two_process_cpu_gather_returns_each_item_once(tmp_path, n_items):
    out = tmp_path / "gathered.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **CPU_ONLY}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "yaml/2_gpu.yaml"),
           "--main_process_port", str(free_port()),
           str(ROOT / "tests/scripts/gather_check.py"), "--n", str(n_items), "--out", str(out)]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["num_processes"] == 2
    assert report["device"].startswith("cpu")
    assert sorted(report["values"]) == list(range(n_items))
