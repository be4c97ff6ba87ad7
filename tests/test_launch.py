"""The project's accelerate launch configs run several CPU processes and gather without duplicates."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("n_items", [10, 11])
def test_two_process_cpu_gather_returns_each_item_once(tmp_path, n_items):
    out = tmp_path / "gathered.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "yaml/2_gpu.yaml"),
           str(ROOT / "tests/scripts/gather_check.py"), "--n", str(n_items), "--out", str(out)]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["num_processes"] == 2
    assert report["device"].startswith(("cpu", "cuda"))
    assert sorted(report["values"]) == list(range(n_items))
