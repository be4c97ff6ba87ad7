"""HandOccNet (``hand_occ_net``) and Semi-Hand(-Object) (``semi_hand``, ``semi_hand_object``): official
state_dict layouts, blocks against their written-out spec, outputs, losses against hand-computed values, a
training step on the tiny DexYCB tree, strict loading of official-layout checkpoints, the experiment configs and
A+B routing with HandOccNet as the hand-only model (docs/official-baselines.md §3, §4, §10-§12)."""
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fixtures_models import assert_checkpoint_restores, assert_step_trains
from models.baseline_losses import ManoRegressionLoss
from models.blocks.occlusion_attention import FeatureInjectingTransformer, SpatialGate
from models.blocks.single_fpn import ResNetFPN
from models.blocks.transformer import CRBlock
from models.losses import LossWeights, build_loss
from utils.checkpoint import CheckpointMismatchError, load_model_checkpoint
from utils.config import apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "official_keys"
B = 2
SMALL = 64  # Semi-Hand input size in the tests (any multiple of 32 works; the configs use 512)
EXPERIMENTS = {"hand_occ_net": "handoccnet.dexycb_s0.h-ho_train", "semi_hand": "semihand.dexycb_s0.h-ho_train",
               "semi_hand_object": "semihand.dexycb_s0.h-ho_train"}
KEY_FILES = {"hand_occ_net": ("keys_handoccnet.txt", 910, 39_319_352),
             "semi_hand": ("keys_semihand.txt", 848, 33_477_332),
             "semi_hand_object": ("keys_semihandobject.txt", 892, 34_480_019)}
MESH_OUTPUTS = {"pred_joints3d_cam": (B, 21, 3), "pred_verts3d_cam": (B, 778, 3), "pred_mano_pose": (B, 16, 3, 3),
                "pred_mano_pose_aa": (B, 48), "pred_mano_shape": (B, 10), "pred_joints_img": (B, 21, 2),
                "pred_joints3d_w_gr": (B, 21, 3), "pred_verts3d_w_gr": (B, 778, 3),
                "gt_joints3d_cam": (B, 21, 3), "gt_verts3d_cam": (B, 778, 3), "gt_mano_pose": (B, 16, 3, 3),
                "gt_mano_shape": (B, 10), "gt_joints3d_w_gr": (B, 21, 3), "gt_verts3d_w_gr": (B, 778, 3),
                "joints_img": (B, 21, 2)}
GRID = (B, 32, 32, 21)


def baseline_config(name, mano_root, **overrides):
    """The official experiment config of ``name`` (semi_hand: the Semi-Hand-Object one renamed) + overrides."""
    cfg = load_config(ROOT / "experiment" / EXPERIMENTS[name])
    values = {"base.mano_root": str(mano_root), "model.name": name, "loss.name": name}
    if name != "hand_occ_net":
        values["data.input_img_shape"] = [SMALL, SMALL]
    return apply_overrides(cfg, {**values, **overrides})


def read_key_file(file_name):
    """[(key, shape, dtype)] in state_dict order (tab-separated ``key [d0, d1] dtype``, ``#`` comments)."""
    entries = []
    for line in (DATA / file_name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        entries.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()), dtype))
    return entries


def make_batch(size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[[0.15, 0.20, 0.70, 0.80], [0.40, 0.45, 0.95, 0.90]],
                          [[0.05, 0.05, 0.40, 0.45], [0.60, 0.55, 0.90, 0.95]]]) * size  # 2nd: disjoint boxes
    return {"img": torch.rand(B, 3, size, size, generator=gen), "bbox_hand": boxes[:, 0], "bbox_obj": boxes[:, 1],
            "mano_param": torch.randn(B, 58, generator=gen) * 0.3, "joints_img": torch.rand(B, 21, 2, generator=gen)}


@pytest.fixture(scope="module")
def models(standin_mano_root):
    """The three models built from their configs (random weights), eval mode; built once per module."""
    from models import build_model

    torch.manual_seed(0)
    return {name: build_model(baseline_config(name, standin_mano_root)).eval() for name in EXPERIMENTS}


# ------------------------------------------------------------------------------------------ state dicts


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_state_dict_equals_the_official_key_list(models, name):
    file_name, entries, parameters = KEY_FILES[name]
    expected = read_key_file(file_name)
    model = models[name]
    ours = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]
    assert len(expected) == entries
    assert [e for e in expected if e not in ours] == [] and [e for e in ours if e not in expected] == []
    assert ours == expected  # same order too
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_official_mano_copies_are_one_shared_layer(models):
    handocc = models["hand_occ_net"]
    assert handocc.mano_layer is handocc.regressor.mano_regHead.mano_layer
    assert models["semi_hand"].mano_layer is models["semi_hand"].mano_branch.mano_layer


# ------------------------------------------------------------------------------------------ blocks


def _handocc_block_reference(block, query, key):
    """HandOccNet ``Block`` written out from docs/official-baselines.md §3.3 (explicit softmax, per-head loop)."""
    b, c, h, w = query.shape
    heads, d = block.num_heads, c // block.num_heads
    qe, ke = query + block.q_embedding, key + block.k_embedding

    def tokens(x):
        return x.flatten(2).transpose(1, 2)

    q, k, v = tokens(block.encode_query(qe)), tokens(block.encode_key(ke)), tokens(block.encode_value(key))
    out = []
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        attn = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d), dim=-1)  # (B, N, N)
        if block.gated:
            q2, k2 = tokens(block.encode_query2(qe))[..., sl], tokens(block.encode_key2(ke))[..., sl]
            gate = torch.sigmoid((q2 @ k2.transpose(1, 2) / math.sqrt(d)).sum(dim=-1, keepdim=True))  # (B, N, 1)
            attn = attn * gate
        out.append(attn @ v[..., sl])
    t = torch.cat(out, dim=-1)
    if block.query_residual:
        t = tokens(query) + t
    mlp = block.mlp
    t = t + mlp.fc2(F.gelu(mlp.fc1(F.layer_norm(t, (c,), block.norm2.weight, block.norm2.bias, 1e-5))))
    return t.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("gated", [True, False], ids=["FIT", "SET"])
def test_handocc_blocks_match_the_written_out_spec(gated):
    torch.manual_seed(0)
    block = CRBlock(16, num_heads=4, embedding_res=4, gated=gated, query_residual=not gated)
    assert [n for n, _ in block.named_parameters()][:2] == ["q_embedding", "k_embedding"]
    query, key = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(query, key), _handocc_block_reference(block, query, key),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"needs \(4, 4\) maps, got query \(8, 8\)"):
        block(torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8))


def test_fit_fuses_the_key_map_with_the_injected_features():
    torch.manual_seed(0)
    fit = FeatureInjectingTransformer(inp_res=4, dim=8, depth=2, num_heads=2)
    query, key = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        injected = fit.layers[1](fit.layers[0](query, key), key)
        fused = torch.cat((key, injected), dim=1)
        expected = fit.conv1[2](F.relu(fit.conv1[0](fused))) + fit.conv2[0](fused)
        torch.testing.assert_close(fit(query, key), expected)


def test_spatial_gate_is_sigmoid_of_bn_conv_of_channel_max_and_mean():
    torch.manual_seed(0)
    gate = SpatialGate().eval()
    with torch.no_grad():
        gate.spatial.conv.weight.zero_()
        gate.spatial.conv.weight[0, 0, 3, 3] = 1.0   # centre tap on the channel max
        gate.spatial.conv.weight[0, 1, 3, 3] = -2.0  # centre tap on the channel mean
        values = torch.tensor([[1.0, -1.0], [0.5, 3.0]])
        x = torch.stack((values, 2 * values, -values))[None]  # (1, 3, 2, 2)
        channel_max = torch.maximum(2 * values, -values)
        channel_mean = 2 * values / 3
        bn_scale = 1 / math.sqrt(1 + 1e-5)  # running stats: mean 0, var 1
        expected = torch.sigmoid((channel_max - 2 * channel_mean) * bn_scale)
        torch.testing.assert_close(gate(x)[0, 0], expected)
    assert gate.spatial.bn.momentum == 0.01 and gate.spatial.conv.bias is None


def test_fpn_smooth_levels_and_handocc_backbone_split(models):
    def smooth_convs(fpn):
        return [n for n, _ in fpn.named_children() if n.startswith("smooth")]

    assert smooth_convs(models["semi_hand"].base_net) == ["smooth1", "smooth2", "smooth3"]
    assert smooth_convs(models["hand_occ_net"].backbone) == ["smooth2", "smooth3"]
    with pytest.raises(ValueError, match=r"needs smooth level 3 \(P2\), got \(1, 2\)"):
        ResNetFPN(smooth_levels=(1, 2))
    backbone = models["hand_occ_net"].backbone
    img = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        primary, secondary = backbone(img)
        pooled = F.avg_pool2d(ResNetFPN.forward(backbone, img), 2)
    assert primary.shape == secondary.shape == (1, 256, 32, 32)
    torch.testing.assert_close(primary + secondary, pooled)  # gate g and 1 - g split the pooled P2 map


# ------------------------------------------------------------------------------------------ outputs


def test_handoccnet_test_time_outputs(models):
    model = models["hand_occ_net"]
    batch = make_batch(256)
    with torch.no_grad():
        out = model(batch)
        verts, joints = model.mano_layer(batch["mano_param"][:, :48], batch["mano_param"][:, 48:])
    assert {k: tuple(v.shape) for k, v in out.items()} == MESH_OUTPUTS
    torch.testing.assert_close(out["gt_joints3d_cam"], joints / 1000)  # metres
    torch.testing.assert_close(out["gt_verts3d_cam"], verts / 1000)
    assert out["pred_joints3d_w_gr"] is out["pred_joints3d_cam"] and out["joints_img"] is batch["joints_img"]
    assert ((out["pred_joints_img"] > 0) & (out["pred_joints_img"] < 1)).all()  # soft-argmax over the crop
    assert out["pred_verts3d_cam"].abs().max() < 1.0
    no_gt = {"img": batch["img"][:1]}
    with torch.no_grad():
        assert set(model(no_gt)) == {k for k in MESH_OUTPUTS if not k.startswith("gt_") and k != "joints_img"}


def test_handoccnet_reads_img_1_first_and_needs_256_px(models):
    model = models["hand_occ_net"]
    img = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        direct = model({"img": img})["pred_verts3d_cam"]
        via_img_1 = model({"img": torch.zeros(1, 3, 128, 128), "img_1": img})["pred_verts3d_cam"]
    torch.testing.assert_close(via_img_1, direct)
    with pytest.raises(ValueError, match=r"needs 256x256 images, got \(128, 128\) \(batch key img;"):
        model({"img": torch.zeros(1, 3, 128, 128)})


def test_handoccnet_config_must_give_256_px(standin_mano_root):
    from models import build_model

    cfg = baseline_config("hand_occ_net", standin_mano_root, **{"data.input_img_shape": [128, 128]})
    with pytest.raises(ValueError, match=r"hand_occ_net needs 256x256 input images, data.input_img_shape is "
                                         r"\[128, 128\]"):
        build_model(cfg)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_model_backbone_picks_the_fpn_trunk(models, standin_mano_root, name):
    from models import build_model

    small = build_model(baseline_config(name, standin_mano_root, **{"model.backbone": "resnet18"}))
    fpn = small.backbone if name == "hand_occ_net" else small.base_net
    # ResNet-18 stage widths feed the laterals; every module outside the trunk keeps its official shape
    assert [fpn.latlayer3.in_channels, fpn.latlayer2.in_channels, fpn.latlayer1.in_channels,
            fpn.toplayer.in_channels] == [64, 128, 256, 512]
    assert sum(type(m).__name__ == "BasicBlock" for m in fpn.modules()) == 8
    official = {k: v.shape for k, v in models[name].state_dict().items()}
    trunk = ("backbone.layer", "backbone.toplayer", "backbone.latlayer", "base_net.layer", "base_net.toplayer",
             "base_net.latlayer")
    assert {k: v.shape for k, v in small.state_dict().items() if not k.startswith(trunk)} == \
        {k: s for k, s in official.items() if not k.startswith(trunk)}
    with pytest.raises(ValueError, match=rf"{EXPERIMENTS[name]}.*: model.backbone must be one of .*got 'vgg16'"):
        build_model(baseline_config(name, standin_mano_root, **{"model.backbone": "vgg16"}))


@pytest.mark.parametrize("name", ["semi_hand", "semi_hand_object"])
def test_semihand_test_time_outputs(models, name):
    model = models[name]
    batch = make_batch(SMALL)
    with torch.no_grad():
        out = model(batch)
    expected = dict(MESH_OUTPUTS)
    if name == "semi_hand_object":
        expected.update(preds_joints2d=(B, 21, 2), preds_obj_0=GRID, preds_obj_1=GRID, preds_obj_2=GRID)
        assert ((out["preds_obj_2"] > 0) & (out["preds_obj_2"] < 1)).all()  # sigmoid confidences
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    official_gt_keys = {"mano_pose": batch["mano_param"][:, :48], "mano_shape": batch["mano_param"][:, 48:]}
    with torch.no_grad():
        via_pose_and_shape = model({k: v for k, v in batch.items() if k != "mano_param"} | official_gt_keys)
    torch.testing.assert_close(via_pose_and_shape["gt_verts3d_cam"], out["gt_verts3d_cam"])
    with pytest.raises(ValueError, match=r"batch\['mano_param'\] must be \(B, 58\) .*got \(2, 116\)"):
        model({**batch, "mano_param": batch["mano_param"].repeat(1, 2)})


def test_semihand_object_hand_path_equals_semihand(models):
    """No hand-object fusion: SemiHand with SemiHandObject's hand weights gives the same hand outputs."""
    hand_only = copy.deepcopy(models["semi_hand"])
    full = models["semi_hand_object"]
    hand_only.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("obj_head.")})
    batch = make_batch(SMALL, seed=3)
    with torch.no_grad():
        ours, theirs = hand_only(batch), full(batch)
    for key in MESH_OUTPUTS:
        torch.testing.assert_close(ours[key], theirs[key])
    torch.testing.assert_close(theirs["preds_joints2d"], theirs["pred_joints_img"])


# ------------------------------------------------------------------------------------------ losses


def _loss_inputs():
    """Outputs / batch of one sample with values whose loss terms are easy to compute by hand."""
    outputs = {"pred_verts3d_cam": torch.zeros(1, 778, 3), "gt_verts3d_cam": torch.full((1, 778, 3), 0.01),
               "pred_joints3d_cam": torch.full((1, 21, 3), 0.02), "gt_joints3d_cam": torch.zeros(1, 21, 3),
               "pred_mano_pose": torch.eye(3).expand(1, 16, 3, 3), "gt_mano_pose": torch.zeros(1, 16, 3, 3),
               "pred_mano_shape": torch.full((1, 10), 0.1), "gt_mano_shape": torch.zeros(1, 10),
               "pred_joints_img": torch.full((1, 21, 2), 0.5),
               "pred_mano_pose_aa": torch.cat((torch.full((1, 3), 5.0), torch.full((1, 45), 0.2)), dim=1),
               "preds_obj": [torch.full((1, 32, 32, 21), 0.6), torch.full((1, 32, 32, 21), 0.5),
                             torch.zeros(1, 32, 32, 21)]}
    batch = {"joints_img": torch.full((1, 21, 2), 0.4), "obj_p2d": torch.full((1, 21, 2), 0.5),
             "obj_mask": torch.ones(1, 32, 32, dtype=torch.int64)}
    return batch, outputs


def test_loss_terms_against_hand_computed_values(standin_mano_root):
    batch, outputs = _loss_inputs()
    supervised = {"mano_verts": 1e4 * 1e-4, "mano_joints": 1e4 * 4e-4, "mano_pose": 10 * 3 / 9,
                  "mano_shape": 0.1 * 0.01, "joints_img": 100 * 0.01}
    regularisers = {"shape_regul": 100 * 0.01, "pose_regul": 1 * 0.04}  # fingers only: the 5.0 global is skipped
    objects = {"obj_total_loss": 500 * 0.1 + 100 * math.exp(-0.1)}  # |0.6-0.5| reg; conf target exp(-0.1)
    for name, terms in (("hand_occ_net", supervised), ("semi_hand", {**supervised, **regularisers}),
                        ("semi_hand_object", {**supervised, **regularisers, **objects})):
        losses = build_loss(baseline_config(name, standin_mano_root))(batch, outputs)
        assert set(losses) == set(terms) | {"total"}, name
        for term, value in terms.items():
            assert losses[term].item() == pytest.approx(value, rel=1e-5), (name, term)
        assert losses["total"].item() == pytest.approx(sum(terms.values()), rel=1e-5)


def test_loss_weights_from_config_and_errors(standin_mano_root):
    batch, outputs = _loss_inputs()
    cfg = baseline_config("hand_occ_net", standin_mano_root,
                          **{"loss.weight": {"mano_lambda_verts3d": 2.0, "lambda_joints2d": 1.0}})
    losses = build_loss(cfg)(batch, outputs)
    assert losses["mano_verts"].item() == pytest.approx(2e-4) and losses["joints_img"].item() == pytest.approx(0.01)
    assert losses["mano_joints"].item() == pytest.approx(4.0, rel=1e-5)  # official default kept
    bad = baseline_config("hand_occ_net", standin_mano_root, **{"loss.weight": {"x_hand": 1.0}})
    with pytest.raises(KeyError, match=r"loss.weight keys \['x_hand'\] are not weights of loss 'hand_occ_net'"):
        build_loss(bad)
    without_gt = {k: v for k, v in outputs.items() if not k.startswith("gt_")}
    with pytest.raises(KeyError, match=r"model outputs has no 'gt_verts3d_cam' \(.*mano_param\)"):
        ManoRegressionLoss(LossWeights())(batch, without_gt)


# ------------------------------------------------------------------------------------------ training step


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_training_step_on_tiny_dexycb(models, tiny_dexycb, name):
    from datasets import build_dataset, build_loader
    from engine.trainer import build_optimizer

    cfg = baseline_config(name, tiny_dexycb.mano_root, **{"data.root_dir": str(tiny_dexycb.root),
                                                          "train.batch_size": B, "train.num_workers": 0})
    torch.manual_seed(0)
    batch = next(iter(build_loader(cfg, "train", build_dataset(cfg, "train"))))
    size = 256 if name == "hand_occ_net" else SMALL
    assert batch["img"].shape == (B, 3, size, size)
    if name == "hand_occ_net":  # image-normalised 2D targets (bbox_hand_normalize_2d_joint false)
        torch.testing.assert_close(batch["joints_img"], batch["uv"])
    model = copy.deepcopy(models[name]).train()
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    outputs = model(batch)
    if name == "semi_hand_object":
        assert [tuple(t.shape) for t in outputs["preds_obj"]] == [GRID] * 3
    losses = build_loss(cfg)(batch, outputs)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["total"].backward()
    probes = {"hand_occ_net": ("backbone.layer0.0.weight", "FIT.layers.0.q_embedding", "SET.layers.1.mlp.fc2.weight",
                               "backbone.attention_module.spatial.conv.weight", "regressor.mano_regHead.pose_reg.weight"),
              "semi_hand": ("base_net.layer0.0.weight", "hand_head.betas", "mano_branch.shape_reg.weight"),
              "semi_hand_object": ("base_net.layer0.0.weight", "obj_head.out_conv.weight",
                                   "transformer.layers.0.encode_key.weight", "mano_branch.pose_reg.weight")}[name]
    assert_step_trains(model, optimizer, probes)


# ------------------------------------------------------------------------------------------ checkpoints


def test_official_layout_checkpoint_loads_strictly(models, tmp_path):
    model = copy.deepcopy(models["hand_occ_net"])
    path = tmp_path / "test_model_best.pth"
    torch.save({"state_dict": model.state_dict(), "step": 10, "epoch": 2}, path)
    probes = ["FIT.layers.1.q_embedding", "backbone.attention_module.spatial.bn.running_var",
              "regressor.hand_regHead.betas", "mano_layer.th_v_template"]
    saved = assert_checkpoint_restores(model, path, probes, epoch=2)
    assert torch.equal(model.state_dict()["regressor.mano_regHead.mano_layer.th_v_template"],
                       saved["mano_layer.th_v_template"])
    incomplete = {k: v for k, v in model.state_dict().items() if not k.startswith("SET.layers.1.")}
    torch.save({"state_dict": incomplete}, tmp_path / "incomplete.pth")
    with pytest.raises(CheckpointMismatchError, match="SET.layers.1"):
        load_model_checkpoint(model, tmp_path / "incomplete.pth", strict=True)


def test_semihand_object_checkpoint_loads_strictly(models, tmp_path):
    source = models["semi_hand_object"]
    target = copy.deepcopy(source)
    with torch.no_grad():
        for tensor in target.state_dict().values():
            if tensor.is_floating_point():
                tensor.zero_()
    torch.save({"state_dict": source.state_dict()}, tmp_path / "sho.pth")
    load_model_checkpoint(target, tmp_path / "sho.pth", strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


# ------------------------------------------------------------------------------------------ configs


def test_experiment_configs_carry_the_official_values():
    for split in ("s0", "s1", "s3"):
        for suffix in ("h", "h-ho"):
            cfg = load_config(ROOT / "experiment" / f"handoccnet.dexycb_{split}.{suffix}_train")
            assert (cfg.model.name, cfg.loss.name, cfg.data.name, cfg.data.data_split) == \
                   ("hand_occ_net", "hand_occ_net", "DEX_YCB_HOPE", split)
            assert cfg.data.input_img_shape == [256, 256] and cfg.data.bbox_hand_normalize_2d_joint is False
            assert (cfg.train.num_epochs, cfg.train.batch_size, cfg.optimizer.lr) == (25, 64, 1e-4)
            assert cfg.scheduler.milestones == list(range(1, 26)) and cfg.scheduler.gamma == 0.9
    ho3d = load_config(ROOT / "experiment" / "handoccnet.ho3d.h-ho_train")
    assert (ho3d.data.name, ho3d.data.root_dir, ho3d.data.eval_type, ho3d.train.num_epochs) == \
           ("HO3D_HOPE", "data/HO3D_v2", ["val"], 70)
    assert ho3d.scheduler.milestones == [10, 20, 30, 40, 50, 60, 70] and ho3d.scheduler.gamma == 0.7
    for name in ("dexycb_s0.h-ho", "dexycb_s1.h-ho", "dexycb_s3.h-ho", "dexycb_s3.ho", "ho3d.h-ho"):
        cfg = load_config(ROOT / "experiment" / f"semihand.{name}_train")
        assert (cfg.model.name, cfg.loss.name, cfg.data.input_img_shape) == \
               ("semi_hand_object", "semi_hand_object", [512, 512])
        assert (cfg.train.num_epochs, cfg.train.batch_size, cfg.test.batch_size) == (50, 24, 48)
        assert cfg.scheduler.milestones == [10, 20, 30, 40, 50] and cfg.scheduler.gamma == 0.7
        assert cfg.metric.obj_eval_mode == "gt"
        if name.startswith("dexycb"):
            assert (cfg.metric.rep_threshold, cfg.metric.add_threshold) == (20, 0.5)
            assert cfg.data.bbox_hand_normalize_2d_joint is True


# ------------------------------------------------------------------------------------------ A+B


class _FixedGrasp(torch.nn.Module):
    """Test double for the grasp classifier: sample i is 'grasping' when ``flags[i]`` is 1."""

    def __init__(self, flags):
        super().__init__()
        self.flags = torch.tensor(flags, dtype=torch.float32)

    def forward(self, batch):
        return {"pred_obj_conf": torch.stack((1 - self.flags, self.flags), dim=1)}


def test_a_plus_b_routes_handoccnet_the_256_px_copy(tiny_dexycb):
    """Official DexYCB A+B config: 128-px crops for the classifier and HFL-Net, ``img_1`` (256) for HandOccNet.

    (On the s0 split: the tiny tree has no s3 test sequences; the routing does not depend on the split.)"""
    from datasets import build_dataset, build_loader
    from models import build_model

    cfg = load_config(ROOT / "experiment" / "classifier_handoccnet_hflnet.dexycb_s3",
                      overrides=[f"base.mano_root={tiny_dexycb.mano_root}", f"data.root_dir={tiny_dexycb.root}",
                                 "data.data_split=s0", "test.batch_size=2", "test.num_workers=0"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert type(model.h_model).__name__ == "HandOccNet"
    batch = next(iter(build_loader(cfg, "test", build_dataset(cfg, "test"))))
    assert batch["img"].shape == (2, 3, 128, 128) and batch["img_1"].shape == (2, 3, 256, 256)
    model.cls_model = _FixedGrasp([1, 0])  # sample 0 -> HFL-Net, sample 1 -> HandOccNet
    with torch.no_grad():
        out = model(batch)
        alone_h = model.h_model({"img": batch["img_1"][1:]})
        alone_ho = model.ho_model({k: batch[k][:1] for k in ("img", "bbox_hand", "bbox_obj")})
    assert out["pred_grasping"].tolist() == [True, False]
    torch.testing.assert_close(out["pred_verts3d_cam"][1:], alone_h["pred_verts3d_cam"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["pred_joints3d_cam"][:1], alone_ho["pred_joints3d_cam"], rtol=1e-4, atol=1e-5)
    assert out["preds_obj_0"][1].abs().max() == 0  # no object output for the hand-only sample
    pose, betas = batch["mano_param"][1:, :48], batch["mano_param"][1:, 48:]
    torch.testing.assert_close(out["gt_joints3d_cam"][1:], model.h_model.mano_layer(pose, betas)[1] / 1000)
