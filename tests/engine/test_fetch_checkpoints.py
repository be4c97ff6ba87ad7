"""engine/fetch_checkpoints.py against a local stand-in of the Hub repository (no network).

``LocalHub`` serves a folder laid out like ``yqwang255/UniHOPE-CVPR2025-checkpoints`` through the two ``HfApi``
methods the command uses; the offline case goes through the real ``HfApi`` with huggingface_hub's offline mode.
"""
import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from engine.fetch_checkpoints import REPO_ID, main
from models import build_model
from utils.checkpoint import save_checkpoint
from utils.config import load_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiment"
NAME = "hflnet.synthetic"  # the smallest real experiment folder (ResNet-18 trunk, 64 px)


class LocalHub:
    """``list_repo_files`` / ``hf_hub_download`` of :class:`huggingface_hub.HfApi`, served from ``folder``.

    ``fail_after`` makes the n-th download onwards raise ConnectionError (a dropped connection).
    """

    def __init__(self, folder: Path, fail_after: int | None = None):
        self.folder, self.fail_after, self.downloads = folder, fail_after, []

    def list_repo_files(self, repo_id, revision=None):
        assert repo_id == REPO_ID and revision is None
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())

    def hf_hub_download(self, repo_id, filename, revision=None, local_dir=None):
        assert repo_id == REPO_ID
        if self.fail_after is not None and len(self.downloads) >= self.fail_after:
            raise ConnectionError("connection reset by peer")
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.folder / filename, target)
        self.downloads.append(filename)
        return str(target)


def _run(capsys, argv, api=None):
    try:
        status = main(argv, api=api)
    except SystemExit as stop:
        status = stop.code
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory, standin_mano_root):
    """A repository with the hflnet.synthetic folder (cfg.json + a strictly loadable test_model_best.pth) and a
    second experiment holding a README only."""
    folder = tmp_path_factory.mktemp("hub")
    experiment = folder / "experiment" / NAME
    experiment.mkdir(parents=True)
    raw = json.loads((EXPERIMENTS / NAME / "cfg.json").read_text())
    raw["base"]["mano_root"] = str(standin_mano_root)
    (experiment / "cfg.json").write_text(json.dumps(raw))
    torch.manual_seed(0)
    model = build_model(load_config(experiment))
    save_checkpoint(experiment / "test_model_best.pth", model.state_dict(), epoch=4)
    (folder / "experiment" / "unihope.dexycb_s0").mkdir()
    (folder / "experiment" / "unihope.dexycb_s0" / "README.md").write_text("placeholder\n")
    (folder / "README.md").write_text("repository card\n")
    return folder


def test_list_names_every_experiment_folder(hub_folder, capsys):
    status, out, _ = _run(capsys, ["--list"], LocalHub(hub_folder))
    assert status == 0
    assert out.splitlines() == [f"{NAME}  (2 files)", "unihope.dexycb_s0  (1 files)"]


def test_fetch_downloads_the_folder_and_loads_each_checkpoint_strictly(hub_folder, tmp_path, capsys):
    hub = LocalHub(hub_folder)
    status, out, err = _run(capsys, ["--name", NAME, "--dest", str(tmp_path)], hub)
    assert status == 0, err
    assert hub.downloads == [f"experiment/{NAME}/cfg.json", f"experiment/{NAME}/test_model_best.pth"]
    fetched = tmp_path / "experiment" / NAME / "test_model_best.pth"
    assert fetched.read_bytes() == (hub_folder / "experiment" / NAME / "test_model_best.pth").read_bytes()
    assert f"{fetched}: loads strictly into HFLNet (model)" in out


def test_checkpoint_with_an_extra_key_fails_the_check(hub_folder, tmp_path, capsys):
    folder = tmp_path / "hub"
    shutil.copytree(hub_folder, folder)
    checkpoint = folder / "experiment" / NAME / "test_model_best.pth"
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    state["extra_head.weight"] = torch.zeros(2)
    save_checkpoint(checkpoint, state)
    status, _, err = _run(capsys, ["--name", NAME, "--dest", str(tmp_path / "out")], LocalHub(folder))
    assert status == 2
    assert "test_model_best.pth does not load strictly" in err
    assert "unexpected 1 (extra_head.weight)" in err


def test_unknown_name_lists_close_names(hub_folder, tmp_path, capsys):
    status, _, err = _run(capsys, ["--name", "unihope.dexycb_s9", "--dest", str(tmp_path)], LocalHub(hub_folder))
    assert status == 2
    assert "unknown experiment 'unihope.dexycb_s9'" in err
    assert "close names: unihope.dexycb_s0" in err
    assert not (tmp_path / "experiment").exists()


def test_dropped_connection_says_how_far_it_got_and_a_rerun_completes(hub_folder, tmp_path, capsys):
    status, _, err = _run(capsys, ["--name", NAME, "--dest", str(tmp_path)], LocalHub(hub_folder, fail_after=1))
    assert status == 2
    assert ("cannot reach the Hugging Face Hub to fetch experiment/hflnet.synthetic/test_model_best.pth "
            "(1 of 2 files done; run the command again to resume) (offline?): ConnectionError" in err)
    status, out, _ = _run(capsys, ["--name", NAME, "--dest", str(tmp_path)], LocalHub(hub_folder))
    assert status == 0 and "loads strictly" in out


def test_offline_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    status, _, err = _run(capsys, ["--name", NAME, "--dest", str(tmp_path)])  # the real HfApi
    assert status == 2
    assert f"cannot reach the Hugging Face Hub to list {REPO_ID} (offline?)" in err


def test_a_plus_b_checkpoint_may_load_into_a_sub_model(tmp_path, standin_mano_root, capsys):
    folder = tmp_path / "hub" / "experiment" / "classifier_x_y.dexycb_s3"
    folder.mkdir(parents=True)
    raw = {"base": {"mano_root": str(standin_mano_root)},
           "data": {"input_img_shape": [64, 64], "input_img_shape_cls": [64, 64]},
           "model": {"name": "twoinone_baseline_classifier", "cls_model": {"name": "classifier"},
                     "h_model": {"name": "mean_pose"}, "ho_model": {"name": "mean_pose"}}}
    (folder / "cfg.json").write_text(json.dumps(raw))
    h_model = build_model(load_config(folder)).h_model
    h_model.mean_joints.fill_(0.5)
    save_checkpoint(folder / "h_model_best.pth", h_model.state_dict())
    status, out, err = _run(capsys, ["--name", folder.name, "--dest", str(tmp_path / "out")],
                            LocalHub(tmp_path / "hub"))
    assert status == 0, err
    assert "h_model_best.pth: loads strictly into MeanPose (h_model)" in out
