"""benchmarks/bench_loader.py on a tree it renders itself: rates per worker count and the workers a step needs."""
import math
import re

import pytest

from benchmarks import bench_loader


@pytest.mark.slow
def test_rates_per_worker_count_on_a_rendered_tree(capsys):
    results = bench_loader.main(["--sequences", "10", "--workers", "0", "1", "--samples", "8", "--batch_size", "4",
                                 "--res", "64", "--step_rate", "1000"])
    assert [row["workers"] for row in results] == [0, 1]
    assert all(row["samples_per_s"] > 0 and row["first_batch_s"] > 0 for row in results)
    printed = capsys.readouterr().out
    needed = re.search(r"a training step of 1000 samples/s needs about (\d+) workers at ([0-9.]+) samples/s each",
                       printed)
    assert needed, printed
    per_worker = results[1]["samples_per_s"]  # the row with the most workers (1)
    assert float(needed.group(2)) == pytest.approx(per_worker, abs=0.05)
    assert int(needed.group(1)) == math.ceil(1000 / per_worker)
