"""MobRecon (``mobrecon``) and H2ONet (``h2onet``): official state_dict layout, test-time outputs, the H2ONet
quirks, losses against hand-computed values, a training step on the tiny DexYCB tree, strict loading of an
official-layout checkpoint and A+B routing with H2ONet as the hand-only model (docs/official-baselines.md §5,
§6, §10, §11)."""
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_models import assert_checkpoint_restores, assert_step_trains
from models import build_model
from models.baseline_losses import MeshRegressionLoss, edge_length_loss, normal_vector_loss
from models.h2onet import rot6d_to_matrix_rows
from models.losses import build_loss
from models.mobrecon import J21_TIP_VERTS, j21_regressor, load_backbone_weights
from utils.checkpoint import load_model_checkpoint
from utils.config import apply_overrides, load_config
from utils.errors import CheckpointError
from utils.hand_conventions import MANO_TO_MANOPTH_ORDER
from utils.mano_io import load_mano_assets

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "official_keys"
EXPERIMENTS = {"mobrecon": "mobrecon.dexycb_s0.h-ho_train", "h2onet": "h2onet.dexycb_s0.h-ho_train"}
PARAMETERS = {"mobrecon": 8_760_861, "h2onet": 26_428_472}
B = 2


def read_key_file(name):
    """[(key, shape, dtype)] in state_dict order from a tab-separated key file (``#`` lines are comments)."""
    entries = []
    for line in (DATA / f"keys_{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        entries.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()), dtype))
    return entries


def official_config(name, mano_root, **overrides):
    cfg = load_config(ROOT / "experiment" / EXPERIMENTS[name])
    return apply_overrides(cfg, {"base.mano_root": str(mano_root), **overrides})


@pytest.fixture(scope="module")
def asset_cache(tmp_path_factory):
    """Mesh-hierarchy cache folder of this module (never the user's ~/.cache)."""
    folder = tmp_path_factory.mktemp("mesh_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNIHOPE_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def models(standin_mano_root, asset_cache):
    torch.manual_seed(0)
    return {name: build_model(official_config(name, standin_mano_root)).eval() for name in EXPERIMENTS}


def make_batch(mano_root, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pose = torch.randn(B, 48, generator=gen) * 0.3
    return {"img": torch.rand(B, 3, 128, 128, generator=gen), "mano_pose": pose,
            "mano_shape": torch.randn(B, 10, generator=gen) * 0.5, "val_mano_pose": pose.flip(0),
            "joints_img": torch.rand(B, 21, 2, generator=gen)}


# ------------------------------------------------------------------------------------------ layout


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_state_dict_equals_the_official_key_list(models, name):
    expected = read_key_file(name)
    actual = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in models[name].state_dict().items()]
    assert len(expected) == {"mobrecon": 674, "h2onet": 895}[name]
    assert actual == expected  # names, shapes, dtypes and order
    assert sum(p.numel() for p in models[name].parameters()) == PARAMETERS[name]


def test_mesh_cache_was_written_once(models, asset_cache):
    assert len(list(asset_cache.glob("mesh_hierarchy_*.npz"))) == 1  # both models share one hierarchy


def test_j21_regressor_rows(standin_mano_root):
    regressor = load_mano_assets(standin_mano_root, "right").J_regressor
    j21 = j21_regressor(regressor)
    assert j21.shape == (21, 778) and j21.dtype == np.float32
    np.testing.assert_allclose(j21[0], regressor[0].astype(np.float32))       # wrist
    np.testing.assert_allclose(j21[5], regressor[1].astype(np.float32))       # index1 = MANO joint 1
    tips = {4: 745, 8: 317, 12: 445, 16: 556, 20: 673}  # middle tip 445 (official quirk, GT uses 444)
    for row, vertex in tips.items():
        assert j21[row, vertex] == 1 and j21[row].sum() == 1
    assert J21_TIP_VERTS == (745, 317, 445, 556, 673) and len(MANO_TO_MANOPTH_ORDER) == 21


# ------------------------------------------------------------------------------------------ outputs


def test_mobrecon_test_time_outputs(models, standin_mano_root):
    model = models["mobrecon"]
    batch = make_batch(standin_mano_root)
    with torch.no_grad():
        out = model(batch)
    assert out["pred_verts3d_cam"].shape == (B, 778, 3) and out["pred_joints_img"].shape == (B, 21, 2)
    torch.testing.assert_close(out["pred_joints3d_cam"], torch.einsum("jv,bvc->bjc", model.mano_joint_reg,
                                                                      out["pred_verts3d_cam"]))
    assert out["pred_verts3d_w_gr"] is out["pred_verts3d_cam"] and out["joints_img"] is batch["joints_img"]
    verts, joints = model.mano_layer(batch["mano_pose"], batch["mano_shape"])
    torch.testing.assert_close(out["gt_joints3d_cam"], joints / 1000)
    torch.testing.assert_close(out["gt_verts3d_w_gr"], model.mano_layer(batch["val_mano_pose"],
                                                                        batch["mano_shape"])[0] / 1000)
    with torch.no_grad():
        alone = model({"img": batch["img"][:1]})
    assert set(alone) == {"pred_verts3d_cam", "pred_joints3d_cam", "pred_verts3d_w_gr", "pred_joints3d_w_gr",
                          "pred_joints_img"}
    torch.testing.assert_close(alone["pred_verts3d_cam"], out["pred_verts3d_cam"][:1], rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the project's mano_param (B, 58) gives the same GT as the official pair
        packed = model({"img": batch["img"], "mano_param": torch.cat([batch["mano_pose"], batch["mano_shape"]], 1)})
    torch.testing.assert_close(packed["gt_verts3d_cam"], out["gt_verts3d_cam"])
    with pytest.raises(ValueError, match=r"must be \(B, 3, 128, 128\).*got \(1, 3, 256, 256\)"):
        model({"img": torch.zeros(1, 3, 256, 256)})


def test_row_convention_6d():
    identity = rot6d_to_matrix_rows(torch.tensor([[2.0, 0, 0, 0, 3, 0]]))
    torch.testing.assert_close(identity[0], torch.eye(3))
    rot = rot6d_to_matrix_rows(torch.tensor([[0.0, 1, 0, -1, 0, 0]]))[0]
    torch.testing.assert_close(rot, torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]))  # rows b1, b2, b1 x b2


def test_h2onet_test_time_outputs(models, standin_mano_root):
    model = models["h2onet"]
    batch = make_batch(standin_mano_root)
    with torch.no_grad():
        out = model(batch)
    rot, root = out["pred_glob_rot_mat"], out["pred_joints3d_wo_gr"][:, :1]
    torch.testing.assert_close(rot, rot6d_to_matrix_rows(out["pred_glob_rot"]))
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(B, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["pred_joints3d_wo_gr"], model.mano_joint_reg @ out["pred_verts3d_wo_gr"])
    expected = torch.einsum("bij,bvj->bvi", rot, out["pred_verts3d_wo_gr"] - root) + root
    torch.testing.assert_close(out["pred_verts3d_cam"], expected, rtol=1e-5, atol=1e-6)
    assert out["pred_joints3d_w_gr"] is out["pred_joints3d_cam"]
    pose, shape = batch["mano_pose"], batch["mano_shape"]
    flat_root = torch.cat([torch.zeros(B, 3), pose[:, 3:]], dim=1)
    torch.testing.assert_close(out["gt_verts3d_wo_gr"], model.mano_layer(flat_root, shape)[0] / 1000)
    torch.testing.assert_close(out["gt_glob_rot"], pose[:, :3])
    angle = pose[0, :3].norm()
    axis = pose[0, :3] / angle
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rodrigues = torch.eye(3) + torch.sin(angle) * cross + (1 - torch.cos(angle)) * cross @ cross
    torch.testing.assert_close(out["gt_glob_rot_mat"][0], rodrigues, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out["gt_joints3d_w_gr"], model.mano_layer(batch["val_mano_pose"], shape)[1] / 1000)


def test_h2onet_gradient_routing(models, standin_mano_root):
    """Rotation loss trains only the orientation branch; the rotated mesh reaches the mesh branch via the root."""
    model = copy.deepcopy(models["h2onet"]).train()
    out = model(make_batch(standin_mano_root))
    parameters = dict(model.named_parameters())
    trained = ["decoder3d.rot_reg.fc_block.6.weight", "backbone.dense_stack3.dense5.conv2.conv1x1.0.weight"]
    untouched = ["decoder3d.head.layer.weight", "backbone.dense_stack2.dense4.conv1.conv1x1.0.weight",
                 "backbone.pre_layer.0.0.weight", "mano_joint_reg"]
    grads = torch.autograd.grad(out["pred_glob_rot_mat"].sum(), [parameters[n] for n in trained + untouched],
                                retain_graph=True, allow_unused=True)
    for name, grad in zip(trained + untouched, grads):
        assert (grad is not None and grad.abs().sum() > 0) == (name in trained), name
    (reg_grad,) = torch.autograd.grad(out["pred_verts3d_cam"].sum(), [model.mano_joint_reg])
    assert reg_grad[0].abs().sum() > 0 and reg_grad[1:].abs().sum() == 0  # only the root row


# ------------------------------------------------------------------------------------------ losses

TRI_FACES = torch.tensor([[0, 1, 2]])
TRI_GT = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
TRI_PRED = torch.tensor([[[0.0, 0, 0], [1, 0, 1], [0, 2, 0]]])


def test_normal_and_edge_losses_by_hand():
    # GT normal (0, 0, 1); predicted unit edges (1,0,1)/sqrt2, (0,1,0), (-1,2,-1)/sqrt6
    expected_normal = (1 / math.sqrt(2) + 0 + 1 / math.sqrt(6)) / 3
    assert normal_vector_loss(TRI_PRED, TRI_GT, TRI_FACES).item() == pytest.approx(expected_normal, rel=1e-6)
    # lengths pred sqrt2, 2, sqrt6 vs GT 1, 1, sqrt2
    expected_edge = ((math.sqrt(2) - 1) + 1 + (math.sqrt(6) - math.sqrt(2))) / 3
    assert edge_length_loss(TRI_PRED, TRI_GT, TRI_FACES).item() == pytest.approx(expected_edge, rel=1e-6)
    assert edge_length_loss(TRI_GT, TRI_GT, TRI_FACES).item() == 0


def _mesh_outputs(suffixes):
    out = {"pred_joints_img": torch.full((1, 21, 2), 0.5)}
    for suffix in suffixes:
        out.update({f"pred_verts3d{suffix}": TRI_PRED, f"gt_verts3d{suffix}": TRI_GT,
                    f"pred_joints3d{suffix}": torch.ones(1, 21, 3), f"gt_joints3d{suffix}": torch.zeros(1, 21, 3)})
    return out


def test_mobrecon_loss_terms_by_hand():
    weights = {"verts_loss": 1.0, "joint_img_loss": 1.0, "normal_loss": 0.1, "edge_loss": 1.0}
    losses = MeshRegressionLoss(TRI_FACES, weights, with_rotation=False)(
        {"joints_img": torch.zeros(1, 21, 2)}, _mesh_outputs(["_cam"]))
    assert set(losses) == {"verts_loss", "joint_img_loss", "normal_loss", "edge_loss", "total"}
    assert losses["verts_loss"].item() == pytest.approx(2 / 9)  # |1| + |1| over 9 coordinates
    assert losses["joint_img_loss"].item() == pytest.approx(0.5)
    assert losses["normal_loss"].item() == pytest.approx(0.1 * normal_vector_loss(TRI_PRED, TRI_GT, TRI_FACES).item())
    assert losses["total"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "total"))


def test_h2onet_loss_terms_by_hand_and_w_gr_switch():
    weights = {"verts_wo_gr_loss": 1.0, "verts_w_gr_loss": 1.0, "joints_w_gr_loss": 1.0, "glob_rot_loss": 1.0,
               "joints_wo_gr_loss": 1.0, "joint_img_loss": 1.0, "normal_wo_gr_loss": 0.1, "edge_wo_gr_loss": 1.0}
    outputs = _mesh_outputs(["_wo_gr", "_w_gr", "_cam"])
    outputs["pred_glob_rot_mat"] = torch.eye(3)[None]
    outputs["gt_glob_rot_mat"] = torch.tensor([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    batch = {"joints_img": torch.zeros(1, 21, 2)}
    losses = MeshRegressionLoss(TRI_FACES, weights, with_rotation=True)(batch, outputs)
    assert losses["glob_rot_loss"].item() == pytest.approx(4 / 9)  # four entries differ by 1
    assert losses["joints_w_gr_loss"].item() == 1.0 and losses["joints_wo_gr_loss"].item() == 1.0
    assert losses["edge_wo_gr_loss"].item() == pytest.approx(edge_length_loss(TRI_PRED, TRI_GT, TRI_FACES).item())
    assert len(losses) == 9
    without = MeshRegressionLoss(TRI_FACES, weights, with_rotation=True, w_gr=False)(batch, outputs)
    assert set(losses) - set(without) == {"verts_w_gr_loss", "joints_w_gr_loss", "glob_rot_loss"}


def test_loss_builders_read_weights_and_w_gr(standin_mano_root):
    cfg = official_config("h2onet", standin_mano_root, **{"train.w_gr": False,
                                                          "loss.weight": {"normal_wo_gr_loss": 0.5}})
    loss = build_loss(cfg)
    assert loss.weights["normal_wo_gr_loss"] == 0.5 and loss.weights["edge_wo_gr_loss"] == 1.0 and not loss.w_gr
    assert loss.faces.shape == (1538, 3)
    bad = official_config("mobrecon", standin_mano_root, **{"loss.weight": {"verts_wo_gr_loss": 1.0}})
    with pytest.raises(KeyError, match=r"unknown term\(s\) \['verts_wo_gr_loss'\]; known: \['edge_loss'"):
        build_loss(bad)


# ------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_training_step_on_tiny_dexycb(models, tiny_dexycb, name):
    from datasets import build_dataset, build_loader
    from engine.trainer import build_optimizer

    cfg = official_config(name, tiny_dexycb.mano_root, **{"data.root_dir": str(tiny_dexycb.root),
                                                           "train.batch_size": B, "train.num_workers": 0})
    torch.manual_seed(0)
    batch = next(iter(build_loader(cfg, "train", build_dataset(cfg, "train"))))
    assert batch["img"].shape == (B, 3, 128, 128)
    model = copy.deepcopy(models[name]).train()
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    losses = build_loss(cfg)(batch, model(batch))
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["total"].backward()
    probes = {"mobrecon": ("backbone.pre_layer.0.0.weight", "decoder3d.upsample", "decoder3d.head.channel_layer.weight",
                           "backbone.uv_reg.2.0.weight"),
              "h2onet": ("backbone.pre_layer.0.0.weight", "mano_joint_reg", "decoder3d.rot_reg.fc_block.6.weight",
                         "decoder3d.head.layer.weight")}[name]
    assert_step_trains(model, optimizer, probes)


# ------------------------------------------------------------------------------------------ checkpoints


def test_official_layout_checkpoint_loads_strictly(models, tmp_path):
    model = copy.deepcopy(models["h2onet"])
    path = tmp_path / "test_model_best.pth"
    state = {"module." + k: v for k, v in model.state_dict().items()}  # as saved from DataParallel
    torch.save({"state_dict": state, "epoch": 37, "step": 100}, path)
    probes = ["mano_joint_reg", "backbone.dense_stack3.dense5.conv2.conv1x1.1.running_var",
              "decoder3d.rot_reg.fc_block.6.bias", "decoder3d.upsample"]
    assert_checkpoint_restores(model, path, probes, epoch=37)
    del state["module.decoder3d.upsample"]
    torch.save({"state_dict": state}, path)
    with pytest.raises(Exception, match="decoder3d.upsample"):
        load_model_checkpoint(model, path, strict=True)


def test_not_load_rot_reg_reinitialises_only_the_rotation_regressor(models, standin_mano_root, tmp_path):
    """Official train.not_load_rot_reg: resume everything, then start decoder3d.rot_reg afresh (Kaiming-uniform)."""
    from utils.runtime import make_accelerator
    from engine.fit import make_trainer

    model = copy.deepcopy(models["h2onet"])
    path = tmp_path / "h2onet.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    saved = copy.deepcopy(model.state_dict())
    cfg = official_config("h2onet", standin_mano_root, **{"train.not_load_rot_reg": True})
    loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2)
    torch.manual_seed(1)
    trainer, _ = make_trainer(cfg, make_accelerator(), model, None, loader, resume=str(path), only_weights=True)
    resumed = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    changed = {k for k in saved if not torch.equal(saved[k], resumed[k].cpu())}  # the accelerator may use a GPU
    assert changed == {k for k in saved if k.startswith("decoder3d.rot_reg.")}
    for name, value in resumed.items():
        if name.startswith("decoder3d.rot_reg.") and name.endswith(".weight"):
            bound = math.sqrt(6.0 / value[0].numel())  # Kaiming-uniform, ReLU gain, fan-in
            assert bound * 0.95 < value.abs().max() <= bound, name
        elif name.startswith("decoder3d.rot_reg."):
            assert not value.any(), name  # zero biases
    mobrecon_cfg = official_config("mobrecon", standin_mano_root, **{"train.not_load_rot_reg": True})
    with pytest.raises(ValueError, match=r"train.not_load_rot_reg re-initialises H2ONet's decoder3d.rot_reg, "
                                         r"which model 'mobrecon' does not have"):
        make_trainer(mobrecon_cfg, make_accelerator(), copy.deepcopy(models["mobrecon"]), None, loader)


def test_kaiming_rotation_regressor_output_follows_the_image(models):
    """Through nine default-initialised layers the 6D output is nearly constant (bias-dominated); after the
    Kaiming reset the same inputs give clearly different rotations."""
    rot_reg = copy.deepcopy(models["h2onet"].decoder3d.rot_reg)
    gen = torch.Generator().manual_seed(0)
    joint_latent, rotation_latent = torch.rand(2, 8, 1024, 4, 4, generator=gen)

    def spread():
        with torch.no_grad():
            rot6d = rot_reg(joint_latent, rotation_latent)
        return (rot6d.std(0) / rot6d.abs().mean(0)).mean().item()  # relative spread over the 8 samples

    default_spread = spread()
    rot_reg.reset_parameters()
    assert default_spread < 0.05 and spread() > 4 * default_spread


def test_densestack_weights_load_into_the_backbone(models, tmp_path):
    model = copy.deepcopy(models["mobrecon"])
    source = {"module.backbone." + k: torch.full_like(v, 0.5) if v.is_floating_point() else v
              for k, v in model.backbone.state_dict().items()}
    path = tmp_path / "densestack.pth"
    torch.save(source, path)
    loaded = load_backbone_weights(model.backbone, path)
    assert len(loaded) == len(model.backbone.state_dict())
    assert torch.all(model.backbone.state_dict()["thrink.0.weight"] == 0.5)
    torch.save({"other.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"densestack\.pth: no tensor matches the DenseStack backbone"):
        load_backbone_weights(model.backbone, path)


# ------------------------------------------------------------------------------------------ A+B


class _FixedGrasp(torch.nn.Module):
    def __init__(self, flags):
        super().__init__()
        self.flags = torch.tensor(flags, dtype=torch.float32)

    def forward(self, batch):
        return {"pred_obj_conf": torch.stack((1 - self.flags, self.flags), dim=1)}


def test_a_plus_b_routes_hand_only_samples_to_h2onet(tiny_dexycb, asset_cache):
    from datasets import build_dataset, build_loader

    cfg = load_config(ROOT / "experiment" / "classifier_h2onet_hflnet.dexycb_s3",
                      overrides=[f"base.mano_root={tiny_dexycb.mano_root}", f"data.root_dir={tiny_dexycb.root}",
                                 "test.batch_size=2", "test.num_workers=0",
                                 "data.data_split=s0"])  # the tiny tree's s3 test split is empty
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert type(model.h_model).__name__ == "H2ONet"
    batch = next(iter(build_loader(cfg, "test", build_dataset(cfg, "test"))))
    assert batch["img"].shape == (2, 3, 128, 128)
    model.cls_model = _FixedGrasp([0, 1])  # sample 0 -> H2ONet, sample 1 -> HFL-Net
    with torch.no_grad():
        out = model(batch)
        alone_h = model.h_model({"img": batch["img"][:1]})
        alone_ho = model.ho_model({k: batch[k][1:] for k in ("img", "bbox_hand", "bbox_obj")})
    assert out["pred_grasping"].tolist() == [False, True]
    torch.testing.assert_close(out["pred_verts3d_cam"][:1], alone_h["pred_verts3d_cam"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out["pred_joints3d_cam"][1:], alone_ho["pred_joints3d_cam"], rtol=1e-4, atol=1e-6)
    assert out["preds_obj_0"][0].abs().max() == 0
    torch.testing.assert_close(out["gt_joints3d_cam"][:1], model.h_model.mano_layer(
        batch["mano_pose"][:1], batch["mano_shape"][:1])[1] / 1000)
