"""Fixtures of the de-occluder tests: the tiny diffusion pipeline folders and the tiny DexYCB training split."""
from __future__ import annotations

import pytest


def dexycb_train(tree, res=128, pairs=None, **settings):
    """The tiny tree's s0 training split (``settings`` go to :class:`SampleSettings`; ``pairs``: pair index)."""
    from datasets.dexycb import DexYCBDataset
    from datasets.hand_object_sample import SampleSettings
    from utils.mano_io import load_mano_assets

    return DexYCBDataset(tree.root, "s0", "train", load_mano_assets(tree.mano_root, "right"),
                         load_mano_assets(tree.mano_root, "left"), SampleSettings(res=res, augment=True, **settings), pairs=pairs)


def first_grasping(dataset, left: bool) -> int:
    """Index of the first grasping frame of a left / right hand."""
    for i in range(len(dataset)):
        if bool(dataset.index.is_left[i]) == left and dataset.grasping[i]:
            return i
    raise AssertionError(f"the tiny tree has no grasping {'left' if left else 'right'}-hand frame")


@pytest.fixture(scope="session")
def tiny_deoccluder_dirs(tmp_path_factory):
    """(base inpainting folder, ControlNet folder) of the tiny random pipeline."""
    from data_creation.fixtures.tiny_deoccluder import write_tiny_deoccluder

    return write_tiny_deoccluder(tmp_path_factory.mktemp("tiny_deoccluder"), seed=0)
