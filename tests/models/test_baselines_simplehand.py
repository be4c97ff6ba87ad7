"""SimpleHand (``simple_hand``): official state_dict layout, J21 regressor, mesh head, loss, warm-up schedule,
a training step on the tiny DexYCB tree and strict loading of an official-layout checkpoint."""
import copy
import logging
import math
from pathlib import Path

import pytest
import torch

from models.simplehand import (INPUT_SIZE, OFFICIAL_J21_TIP_VERTS, MeshHead, load_backbone_weights,
                               mesh_joint_regressor, sine_position_map)
from models.simplehand_loss import SimpleHandLoss, SimpleHandLossWeights
from utils.checkpoint import CheckpointMismatchError, load_model_checkpoint
from utils.config import apply_overrides, config_from_dict, load_config
from utils.hand_conventions import MANO_TO_MANOPTH_ORDER

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE = Path(__file__).resolve().parents[1] / "official_keys" / "keys_simplehand.txt"
EXPERIMENT = ROOT / "experiment" / "simplehand.dexycb_s0.h-ho_train"
TIP_ROWS = (4, 8, 12, 16, 20)  # thumb .. little tips in manopth order


def read_simplehand_keys():
    """[(key, shape, dtype)] in state_dict order from the official key file (tab-separated, ``#`` comments)."""
    entries = []
    for line in KEY_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        entries.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()), dtype))
    return entries


def simplehand_config(mano_root, **overrides):
    overrides = {"base.mano_root": str(mano_root), **overrides}
    return apply_overrides(load_config(EXPERIMENT), overrides)


@pytest.fixture(scope="module")
def simplehand(standin_mano_root):
    """SimpleHand built from the official s0 config (random weights), eval mode; built once per module."""
    from models import build_model

    torch.manual_seed(0)
    return build_model(simplehand_config(standin_mano_root)).eval()


@pytest.fixture(scope="module")
def test_batch():
    gen = torch.Generator().manual_seed(1)
    return {"img": torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=gen),
            "mano_param": torch.randn(2, 58, generator=gen) * 0.3}


def test_state_dict_equals_the_official_key_list(simplehand):
    expected = read_simplehand_keys()
    ours = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in simplehand.state_dict().items()]
    assert len(expected) == 1334
    assert ours == expected  # names, shapes, dtypes and order
    assert sum(p.numel() for p in simplehand.parameters()) == 50_608_003  # header of the key file
    assert "mano_joint_reg" not in simplehand.state_dict()  # plain tensor officially, not in checkpoints


def test_j21_regressor_rows_and_official_middle_tip(simplehand, test_batch):
    mano = simplehand.mano_layer
    regressor = simplehand.mano_joint_reg
    assert regressor.shape == (21, 778)
    for row, vertex in zip(TIP_ROWS, OFFICIAL_J21_TIP_VERTS):
        expected = torch.zeros(778)
        expected[vertex] = 1
        assert torch.equal(regressor[row], expected)
    body_rows = [r for r in range(21) if r not in TIP_ROWS]
    assert torch.equal(regressor[body_rows], mano.th_J_regressor[[MANO_TO_MANOPTH_ORDER[r] for r in body_rows]])
    # On a rest-pose mesh (where MANO joints = J_regressor @ vertices), J21 reproduces the MANO layer's joints
    # except the middle tip (445 vs the layer's 444).
    verts, joints = mano(torch.zeros(2, 48), test_batch["mano_param"][:, 48:])
    regressed = torch.einsum("jv,bvc->bjc", regressor, verts)
    others = [r for r in range(21) if r != 12]
    assert torch.allclose(regressed[:, others], joints[:, others], atol=1e-3)  # mm
    assert torch.allclose(regressed[:, 12], verts[:, 445]) and torch.allclose(joints[:, 12], verts[:, 444])
    assert mesh_joint_regressor(mano.th_J_regressor, (745, 317, 444, 556, 673))[12, 444] == 1


def test_sine_position_map_matches_the_detr_formula():
    height, width, feats = 4, 3, 8
    pos = sine_position_map(height, width, feats, torch.zeros(1, dtype=torch.float64))
    assert pos.shape == (1, 2 * feats, height, width) and pos.dtype == torch.float64
    for c, i, j in [(0, 0, 0), (3, 2, 1), (6, 3, 2), (feats + 1, 1, 0), (feats + 4, 0, 2), (2 * feats - 1, 3, 1)]:
        part, k = divmod(c, feats)
        coordinate = (i + 1) / (height + 1e-6) if part == 0 else (j + 1) / (width + 1e-6)
        angle = coordinate * 2 * math.pi / 10000 ** (2 * (k // 2) / feats)
        expected = math.sin(angle) if k % 2 == 0 else math.cos(angle)
        assert pos[0, c, i, j].item() == pytest.approx(expected, abs=1e-12), (c, i, j)


def test_mesh_head_samples_features_at_clamped_joints():
    torch.manual_seed(0)
    head = MeshHead(in_channels=16, dims=(8, 8, 4), token_nums=(21, 84, 336)).eval()
    features = torch.randn(1, 16, 7, 7)
    uv = torch.rand(1, 21, 2)
    outside = uv.clone()
    outside[0, 3] = torch.tensor([-0.4, 1.7])  # outside the crop: sampled at the clamped border point
    border = uv.clone()
    border[0, 3] = torch.tensor([0.0, 1.0])
    with torch.no_grad():
        verts = head(features, uv)
        assert verts.shape == (1, 778, 3)
        assert torch.allclose(head(features, outside), head(features, border), atol=1e-6)
        assert not torch.allclose(head(features, border), verts, atol=1e-4)


def test_test_time_outputs(simplehand, test_batch):
    seen = {}
    hook = simplehand.backbone.stem.register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))
    try:
        with torch.no_grad():
            out = simplehand(test_batch)
            again = simplehand(test_batch)
    finally:
        hook.remove()
    assert set(out) == {"uv", "pred_joints3d_cam", "pred_verts3d_cam", "gt_joints3d_cam", "gt_verts3d_cam"}
    assert out["uv"].shape == (2, 42) and out["pred_verts3d_cam"].shape == (2, 778, 3)
    assert torch.equal(seen["input"], test_batch["img"] - 0.5)
    assert torch.allclose(out["pred_joints3d_cam"],
                          torch.einsum("jv,bvc->bjc", simplehand.mano_joint_reg, out["pred_verts3d_cam"]))
    verts_mm, joints_mm = simplehand.mano_layer(test_batch["mano_param"][:, :48], test_batch["mano_param"][:, 48:])
    assert torch.allclose(out["gt_verts3d_cam"], verts_mm / 1000) and torch.allclose(out["gt_joints3d_cam"],
                                                                                   joints_mm / 1000)
    assert all(torch.equal(out[k], again[k]) for k in out)  # eval mode: no dropout / drop-path
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\).*input_img_shape"):
        simplehand({"img": torch.rand(1, 3, 128, 128)})


def test_strict_loading_of_an_official_layout_checkpoint(simplehand, tmp_path):
    # every 7th entry differs from the model's current values (buffers and the int64 MANO faces stay as they are)
    expected = {k: v + 0.5 if i % 7 == 0 and v.is_floating_point() else v
                for i, (k, v) in enumerate(simplehand.state_dict().items())}
    path = tmp_path / "test_model_best.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in expected.items()}, "epoch": 100,
                "score_status": {"test": {"cur": 1.0, "best": 1.0}}}, path)
    target = copy.deepcopy(simplehand)
    load_model_checkpoint(target, path, strict=True)
    loaded = target.state_dict()
    assert list(loaded) == list(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected)
    broken = {k: v for k, v in expected.items() if k != "mesh_head.pos_emb_2"}
    torch.save({"state_dict": broken}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatchError, match="missing 1 \\(mesh_head.pos_emb_2\\)"):
        load_model_checkpoint(target, tmp_path / "broken.pth")


def test_local_backbone_weights_are_loaded_strictly(simplehand, tmp_path):
    weights = {k: v + 1.0 if k == "head.fc.bias" else v for k, v in simplehand.backbone.state_dict().items()}
    torch.save(weights, tmp_path / "fastvit_ma36.pth")
    backbone = copy.deepcopy(simplehand.backbone)
    load_backbone_weights(backbone, tmp_path / "fastvit_ma36.pth")
    assert torch.equal(backbone.head.fc.bias, simplehand.backbone.head.fc.bias + 1.0)
    del weights["head.fc.weight"]
    torch.save(weights, tmp_path / "headless.pth")
    with pytest.raises(CheckpointMismatchError, match="headless.pth.*model.backbone_weights.*head.fc.weight"):
        load_backbone_weights(backbone, tmp_path / "headless.pth")
    with pytest.raises(FileNotFoundError, match="nowhere.pth.*model.backbone_weights"):
        load_backbone_weights(backbone, tmp_path / "nowhere.pth")


# ----------------------------------------------------------------------------------------------- loss


def _loss_inputs():
    """Two samples, hand-sized numbers; sample 1 has xyz_valid = 0 and joint 1 of sample 0 is not valid in 2D."""
    uv_pred = torch.zeros(2, 21, 2)
    uv_pred[0, 0] = torch.tensor([0.1, 0.2])   # |d| sum 0.3, valid
    uv_pred[0, 1] = torch.tensor([0.5, 0.5])   # invalid joint: ignored
    uv_pred[1, 2] = torch.tensor([-0.4, 0.0])  # 0.4, valid
    uv_valid = torch.ones(2, 21)
    uv_valid[0, 1] = 0
    wrist = torch.tensor([0.01, 0.02, 0.5])
    gt_joints = torch.zeros(2, 21, 3) + wrist  # a hand collapsed onto its wrist: root-relative targets are 0
    gt_verts = torch.zeros(2, 778, 3) + wrist
    pred_joints = torch.zeros(2, 21, 3)
    pred_joints[0, 5] = torch.tensor([0.01, -0.02, 0.03])
    pred_verts = torch.zeros(2, 778, 3)
    pred_verts[0, 7] = torch.tensor([0.0, 0.0, 0.1])
    batch = {"uv": torch.zeros(2, 21, 2), "uv_valid": uv_valid, "xyz_valid": torch.tensor([1.0, 0.0]),
             "root_joint_flip": torch.tensor([[0.0, 0.0, 0.7], [0.1, 0.1, 0.7]])}
    outputs = {"uv": uv_pred.reshape(2, 42), "pred_joints3d_cam": pred_joints, "pred_verts3d_cam": pred_verts,
               "gt_joints3d_cam": gt_joints, "gt_verts3d_cam": gt_verts}
    return batch, outputs


def test_simple_hand_loss_terms_hand_computed():
    batch, outputs = _loss_inputs()
    losses = SimpleHandLoss()(batch, outputs)
    assert losses["uv_loss"].item() == pytest.approx((0.3 + 0.4) / 42)
    # gt_wrist origin: targets are all zero, so only the predicted values count (sample 1 is not 3D-valid).
    assert losses["joints_loss"].item() == pytest.approx(10 * (0.01 + 0.02 + 0.03) / 42)
    assert losses["vertices_loss"].item() == pytest.approx(10 * 0.1 / (2 * 778))
    assert losses["total"].item() == pytest.approx(sum(losses[k].item() for k in
                                                       ("uv_loss", "joints_loss", "vertices_loss")))


def test_simple_hand_loss_official_root_joint_flip_origin():
    batch, outputs = _loss_inputs()
    losses = SimpleHandLoss(SimpleHandLossWeights(uv=2.0, joints=1.0, vertices=1.0),
                            target_origin="root_joint_flip")(batch, outputs)
    assert losses["uv_loss"].item() == pytest.approx(2 * (0.3 + 0.4) / 42)
    # sample 0 targets: gt - (0, 0, 0.7) = (0.01, 0.02, -0.2) for every joint and vertex
    joint_sum = 20 * (0.01 + 0.02 + 0.2) + (0.0 + 0.04 + 0.23)
    assert losses["joints_loss"].item() == pytest.approx(joint_sum / 42)
    vert_sum = 777 * (0.01 + 0.02 + 0.2) + (0.01 + 0.02 + 0.3)
    assert losses["vertices_loss"].item() == pytest.approx(vert_sum / (2 * 778))
    with pytest.raises(ValueError, match="target_origin"):
        SimpleHandLoss(target_origin="camera")


# --------------------------------------------------------------------------------------- warm-up schedule


def test_official_warmup_learning_rates():
    from engine.trainer import WarmupStepLR, build_scheduler, warmup_step_lr

    cfg = load_config(EXPERIMENT)
    official = dict(base_lr=5e-4, warmup_steps=5 * 3136, steps_per_epoch=3136, decay_epoch=50)
    for step, lr in [(0, 0.0), (1, 5e-4 / 15680), (7840, 2.5e-4), (15680, 5e-4), (50 * 3136 - 1, 5e-4),
                     (50 * 3136, 5e-5), (99 * 3136, 5e-5)]:
        assert warmup_step_lr(step, **official) == pytest.approx(lr, rel=1e-12, abs=1e-20), step
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=3136)
    assert isinstance(scheduler, WarmupStepLR) and scheduler.per_iteration
    assert scheduler.schedule == official
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.0, 5e-4 / 15680, 2 * 5e-4 / 15680, 3 * 5e-4 / 15680])


class _Line(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        return {"pred": self.w * batch["x"]}


def _warmup_run(model_dir, resume=None, stop_after_steps=None):
    """A 4-epoch toy run (3 steps per epoch, warm-up 1 epoch); returns the lr seen after every step."""
    from accelerate.utils import DataLoaderConfiguration

    from utils.runtime import make_accelerator
    from engine.fit import RunCheckpoints, fit, make_trainer

    cfg = config_from_dict({
        "base": {"model_dir": str(model_dir)}, "train": {"num_epochs": 4, "batch_size": 2},
        "optimizer": {"name": "adamw", "lr": 0.1, "base_lr": 0.1, "warmup_epoch": 1, "weight_decay_l2": 0.0},
        "scheduler": {"name": "step", "milestones": [1], "gamma": 0.5},
        "summary": {"save_latest_freq": 1, "save_mid_freq": 0}})
    data = [{"x": torch.tensor([float(i)]), "y": torch.tensor([2.0 * i])} for i in range(6)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)  # 3 steps per epoch
    accelerator = make_accelerator(split_batches=True, dataloader_config=DataLoaderConfiguration())

    def loss_fn(batch, outputs):
        loss = ((outputs["pred"] - batch["y"]) ** 2).mean()
        return {"mse": loss, "total": loss}

    trainer, state = make_trainer(cfg, accelerator, _Line(), loss_fn, loader, resume=resume)
    seen = []
    checkpoints = RunCheckpoints(model_dir, accelerator, cfg.summary)
    original = checkpoints.after_step
    checkpoints.after_step = lambda t, s: (seen.append(t.optimizer.param_groups[0]["lr"]), original(t, s))
    fit(trainer, state, cfg.train.num_epochs, {}, checkpoints, logging.getLogger("test"),
        stop_after_steps=stop_after_steps)
    return seen


def test_trainer_steps_the_warmup_schedule_every_iteration(tmp_path):
    from engine.trainer import warmup_step_lr

    seen = _warmup_run(tmp_path / "straight")
    schedule = dict(base_lr=0.1, warmup_steps=3, steps_per_epoch=3, decay_epoch=2)
    assert seen == pytest.approx([warmup_step_lr(s, **schedule) for s in range(1, 13)])
    assert seen[:4] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1]) and seen[-1] == pytest.approx(0.01)
    latest = torch.load(tmp_path / "straight" / "model_latest.pth", weights_only=True)
    assert latest["scheduler"]["last_epoch"] == 12  # stepped per iteration only, not again per epoch
    # a run stopped inside the warm-up and resumed continues the schedule where it was
    first = _warmup_run(tmp_path / "resumed", stop_after_steps=2)
    rest = _warmup_run(tmp_path / "resumed", resume=tmp_path / "resumed" / "model_latest.pth")
    assert first + rest == pytest.approx(seen)


# ------------------------------------------------------------------------------------------ training step


def test_training_step_on_tiny_dexycb(simplehand, tiny_dexycb):
    from datasets import build_dataset, build_loader
    from models.losses import build_loss
    from engine.trainer import build_optimizer

    cfg = simplehand_config(tiny_dexycb.mano_root, **{"data.root_dir": str(tiny_dexycb.root),
                                                      "train.batch_size": 2, "train.num_workers": 0})
    torch.manual_seed(0)
    batch = next(iter(build_loader(cfg, "train", build_dataset(cfg, "train"))))
    assert batch["img"].shape == (2, 3, 224, 224) and batch["uv"].shape == (2, 21, 2)
    model = copy.deepcopy(simplehand).train()
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01
    loss_fn = build_loss(cfg)
    losses = loss_fn(batch, model(batch))
    assert set(losses) == {"uv_loss", "joints_loss", "vertices_loss", "total"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for name in ("backbone.stem.0.conv_kxk.0.conv.weight", "keypoints_2d_head.weight", "mesh_head.pos_emb_1",
                 "mesh_head.pred_final.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer.step()
    changed = [k for k, v in model.named_parameters() if not torch.equal(before[k], v)]
    assert "keypoints_2d_head.weight" in changed and "mesh_head.deconv.0.weight" in changed
    assert all(torch.isfinite(v).all() for v in model.parameters())
