"""Golden outputs: every registered model, built small with a fixed seed, gives the stored outputs on a fixed
batch (tests/golden/<name>.json, written by tests/golden_outputs.py), so a wiring change inside a model fails."""
import json

import pytest
from golden_outputs import CASES, differences, golden_file, golden_outputs, output_statistics

from models import MODELS


def test_every_registered_model_has_a_golden_case():
    assert set(CASES) == set(MODELS)
    assert all(golden_file(name).is_file() for name in MODELS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_the_golden_file(name, standin_mano_root):
    stored = json.loads(golden_file(name).read_text())
    found = differences(stored, output_statistics(golden_outputs(standin_mano_root, name)))
    assert not found, (f"the outputs of '{name}' changed:\n  " + "\n  ".join(found[:10]) +
                       f"\nIf this change is intended, rewrite the golden file and commit it: "
                       f".venv/bin/python tests/golden_outputs.py {name}")


def test_differences_tolerates_rounding_but_not_a_changed_value():
    import torch

    outputs = {"pred_joints3d_cam": torch.linspace(-0.1, 0.1, 2 * 21 * 3).reshape(2, 21, 3),
               "pred_grasping": torch.tensor([True, False])}
    stored = output_statistics(outputs)
    rounded = {**outputs, "pred_joints3d_cam": outputs["pred_joints3d_cam"] * (1 + 2e-6)}
    assert differences(stored, output_statistics(rounded)) == []
    moved = outputs["pred_joints3d_cam"].clone()
    moved[0, 0, 0] += 1e-3
    assert differences(stored, output_statistics({**outputs, "pred_joints3d_cam": moved}))[0].startswith(
        "pred_joints3d_cam: mean")
    flipped = {**outputs, "pred_grasping": torch.tensor([True, True])}
    assert differences(stored, output_statistics(flipped)) == [
        "pred_grasping: values [True, True] instead of [True, False]"]
    assert differences(stored, {"pred_joints3d_cam": stored["pred_joints3d_cam"]}) == [
        "output keys ['pred_joints3d_cam'] instead of ['pred_grasping', 'pred_joints3d_cam']"]
