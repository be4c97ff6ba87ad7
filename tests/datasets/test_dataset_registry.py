"""Dataset names are registered once, like model and loss names."""
import pytest

from datasets.registry import DATASETS, register_dataset


def test_a_dataset_name_is_refused_twice():
    builder = DATASETS["DEX_YCB_HOPE"]
    with pytest.raises(KeyError, match=r"dataset 'DEX_YCB_HOPE' is already registered \(by datasets.dexycb\)"):
        register_dataset("DEX_YCB_HOPE")(lambda cfg, split: None)
    assert DATASETS["DEX_YCB_HOPE"] is builder
