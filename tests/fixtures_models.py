"""Helpers and fixtures for the model tests: configs mirroring the official ones, batches, the official key list.

The key list (tests/official_keys/unihope_state_dict_keys.txt, the official state-dict keys with their shapes)
describes DexYCB UniHOPE (128 px, legacy grasp head); the other variants are derived from it by the rules of
docs/official-model.md §1.2, §2.1 and §2.4.
"""
from pathlib import Path

import pytest
import torch

from utils.checkpoint import load_model_checkpoint
from utils.config import config_from_dict

KEY_FILE = Path(__file__).parent / "official_keys" / "unihope_state_dict_keys.txt"
UNIHOPE_ONLY_PREFIXES = ("obj_conf_layer.", "occ_cls_layer.", "fpn_feature_mapper.", "hand_feature_mapper.",
                         "mano_feature_mapper.")


def read_key_file(path=KEY_FILE):
    """{name: (shape tuple, dtype name)} from lines ``name (d0, d1, ...) dtype``; ``#`` lines are comments."""
    entries = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, rest = line.split(" ", 1)
        shape_text, dtype = rest.rsplit(" ", 1)
        shape = tuple(int(d) for d in shape_text.strip("()").split(",") if d.strip())
        entries[name] = (shape, dtype)
    return entries


def official_unihope_keys(input_size=128, legacy=True):
    """UniHOPE keys for another input size / grasp head layout (header of the key file, §1.10)."""
    keys = dict(read_key_file())
    flat = 64 * (input_size // 4) ** 2
    for name in [k for k in keys if k.startswith(("obj_conf_layer.2.", "obj_conf_layer.3."))]:
        del keys[name]
    if legacy:
        keys.update({"obj_conf_layer.2.weight": ((1024, flat), "float32"),
                     "obj_conf_layer.2.bias": ((1024,), "float32"),
                     "obj_conf_layer.3.weight": ((2, 1024), "float32"),
                     "obj_conf_layer.3.bias": ((2,), "float32")})
    else:
        keys.update({"obj_conf_layer.2.weight": ((2, flat), "float32"),
                     "obj_conf_layer.2.bias": ((2,), "float32")})
    keys["occ_cls_layer.2.weight"] = ((2, flat), "float32")
    return keys


def official_hflnet_keys():
    """HFL-Net = UniHOPE without the grasp / occlusion heads and the mappers (§2.4)."""
    return {k: v for k, v in read_key_file().items() if not k.startswith(UNIHOPE_ONLY_PREFIXES)}


def official_classifier_keys(input_size=128):
    """GraspClassifier = the FPN plus a one-Linear grasp head (§2.1)."""
    keys = {k: v for k, v in read_key_file().items() if k.startswith(("base_net.", "obj_conf_layer.0."))}
    keys.update({"obj_conf_layer.2.weight": ((2, 64 * (input_size // 4) ** 2), "float32"),
                 "obj_conf_layer.2.bias": ((2,), "float32")})
    return keys


def state_dict_entries(model):
    """{name: (shape, dtype name)} of a model's state_dict, in the key-file notation."""
    return {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}


def model_config(mano_root, name, input_size=128, **model_keys):
    """A validated config like the official ``cfg.json`` of ``name`` (DexYCB style unless overridden)."""
    raw = {"base": {"mano_root": str(mano_root)},
           "data": {"input_img_shape": [input_size, input_size]},
           "model": {"name": name, **model_keys},
           "train": {"init_layer_weight": name == "unihope_net"}}
    return config_from_dict(raw, source=f"<test config {name}>")


def make_batch(batch_size=2, size=128, pairs=False, with_mano=True, seed=0):
    """A batch in the data loader's layout: images in [0, 1], boxes in crop pixels.

    Sample 0 has overlapping hand / object boxes; sample 1 (and every odd one) has disjoint boxes (empty
    intersection). With ``pairs`` every paired key is concatenated for two parts (the second image differs).
    """
    gen = torch.Generator().manual_seed(seed)
    overlapping = torch.tensor([[0.15, 0.20, 0.70, 0.80], [0.40, 0.45, 0.95, 0.90]]) * size
    disjoint = torch.tensor([[0.05, 0.05, 0.40, 0.45], [0.60, 0.55, 0.90, 0.95]]) * size
    boxes = torch.stack([overlapping if i % 2 == 0 else disjoint for i in range(batch_size)])  # (B, 2, 4)
    parts = 2 if pairs else 1
    batch = {
        "img": torch.rand(batch_size, 3 * parts, size, size, generator=gen),
        "bbox_hand": boxes[:, 0].repeat(1, parts),
        "bbox_obj": boxes[:, 1].repeat(1, parts),
    }
    if with_mano:
        batch["mano_param"] = (torch.randn(batch_size, 58 * parts, generator=gen) * 0.3)
        batch["joints_img"] = torch.rand(batch_size, 21 * parts, 2, generator=gen)
    return batch


@pytest.fixture(scope="module")
def unihope_dexycb(standin_mano_root):
    """UniHOPE as built from the DexYCB config (128 px, legacy grasp head), eval mode; built once per module."""
    from models import build_model

    torch.manual_seed(0)
    return build_model(model_config(standin_mano_root, "unihope_net", obj_conf_layer_legacy=True)).eval()


def assert_step_trains(model, optimizer, probes):
    """After ``backward()``: every probe parameter has a non-zero gradient and ``optimizer.step()`` changes the
    last probe."""
    parameters = dict(model.named_parameters())
    for probe in probes:
        assert parameters[probe].grad is not None and parameters[probe].grad.abs().sum() > 0, probe
    before = parameters[probes[-1]].detach().clone()
    optimizer.step()
    assert not torch.equal(before, parameters[probes[-1]])


def assert_checkpoint_restores(model, path, probes, epoch):
    """Perturb the ``probes`` parameters / buffers of ``model``, load the checkpoint at ``path`` strictly and check
    that every probe is back to its saved value and the checkpoint's epoch is ``epoch``. Returns the saved values."""
    saved = {name: model.state_dict()[name].clone() for name in probes}
    with torch.no_grad():
        for name in probes:
            model.state_dict()[name].add_(1.0)
    checkpoint = load_model_checkpoint(model, path, strict=True)
    assert checkpoint["epoch"] == epoch
    for name in probes:
        assert torch.equal(model.state_dict()[name], saved[name]), name
    return saved
