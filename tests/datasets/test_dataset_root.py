"""``data.root_dir``: relative paths and the official defaults resolve against the repository root, not the cwd."""
import pytest

from datasets.registry import REPOSITORY_ROOT, dataset_root
from utils.config import config_from_dict


def _cfg(root_dir):
    return config_from_dict({"data": {"root_dir": root_dir}}, source="exp/cfg.json")


def test_relative_and_default_roots_are_taken_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").mkdir()  # a folder of that name in the cwd must not be picked
    assert dataset_root(_cfg("datasets"), "data/DexYCB") == REPOSITORY_ROOT / "datasets"
    assert dataset_root(_cfg(None), "datasets") == REPOSITORY_ROOT / "datasets"
    assert dataset_root(_cfg(str(tmp_path)), "data/DexYCB") == tmp_path


def test_a_missing_root_names_the_key_the_file_and_the_resolved_path(tmp_path):
    expected = (r"exp/cfg.json: data.root_dir unset \(official default 'data/NoSuchSet'\) -> dataset folder "
                r".*/data/NoSuchSet does not exist")
    with pytest.raises(FileNotFoundError, match=expected):
        dataset_root(_cfg(None), "data/NoSuchSet")
    with pytest.raises(FileNotFoundError, match=r"data.root_dir='.*nowhere' -> dataset folder .*nowhere"):
        dataset_root(_cfg(str(tmp_path / "nowhere")), "data/DexYCB")
