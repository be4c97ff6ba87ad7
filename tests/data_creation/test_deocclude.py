"""The de-occluder end to end with the tiny random pipeline on the tiny DexYCB tree: pipeline loading, the
resumable two-rank run writing crops + pair index, failed (NaN) generations, the loader's pairs, and the CLI
with a real scoring checkpoint."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_creation.deocclusion.conditions import mesh_depth_renderer
from data_creation.deocclusion.pipeline import Deoccluder, GenerationSettings, load_deocclusion_pipeline
from data_creation.deocclusion.run import (OutputLayout, RunSettings, Tools, grasping_frames, merge_shards,
                                           run_shard)
from datasets.deocc_pairs import load_pair_index
from datasets.hand_object_sample import SampleSettings, build_sample
from datasets.label_files import read_rgb
from fixtures_deocclusion import dexycb_train

ROOT = Path(__file__).resolve().parents[2]
GEN_RES = 32
STORE_RES = 128
STRENGTHS = (0.5, 1.0)
FRAMES = 3


def mean_intensity_scorer(images, sample):
    """Stub scorer with values the test can recompute: 100 x mean intensity of each image."""
    return {"score": images.mean(dim=(1, 2, 3)).double().numpy() * 100.0}


@pytest.fixture(scope="module")
def single_thread():
    """The tiny pipeline runs faster on one thread on a shared machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def renderer():
    from utils.render import MeshRenderer

    with MeshRenderer(GEN_RES, GEN_RES) as mesh_renderer:
        yield mesh_renderer


def make_tools(tree, base_dir, controlnet_dir, renderer, scorer=mean_intensity_scorer):
    from models.blocks.mano_head import right_hand_mano_layer

    pipeline = load_deocclusion_pipeline(base_dir, controlnet_dir)
    return Tools(Deoccluder(pipeline, GenerationSettings(num_inference_steps=1)), scorer,
                 right_hand_mano_layer(tree.mano_root), mesh_depth_renderer(renderer))


@dataclass
class Run:
    dataset: object
    frames: list
    layout: OutputLayout
    counts: list
    tools: Tools


@pytest.fixture(scope="module")
def two_rank_run(tiny_dexycb, tiny_deoccluder_dirs, renderer, single_thread, tmp_path_factory):
    """Three grasping frames de-occluded by two ranks (run one after the other), then merged."""
    dataset = dexycb_train(tiny_dexycb, res=STORE_RES)
    frames = grasping_frames(dataset)[:FRAMES]
    layout = OutputLayout(tmp_path_factory.mktemp("deocc") / "dexycb_s0_train_v1.json")
    tools = make_tools(tiny_dexycb, *tiny_deoccluder_dirs, renderer)
    settings = RunSettings(strengths=STRENGTHS, gen_res=GEN_RES, store_res=STORE_RES, sheets=2)
    counts = [run_shard(dataset, frames, tools, settings, layout, rank, 2) for rank in (0, 1)]
    merge_shards(layout, 2)
    return Run(dataset, frames, layout, counts, tools)


def test_tiny_pipeline_loads_from_folders_and_inpaints_only_the_mask(tiny_deoccluder_dirs, single_thread):
    base, controlnet = tiny_deoccluder_dirs
    assert json.loads((base / "unet" / "config.json").read_text())["in_channels"] == 9
    assert json.loads((controlnet / "config.json").read_text())["conditioning_channels"] == 3
    deoccluder = Deoccluder(load_deocclusion_pipeline(base, controlnet), GenerationSettings(num_inference_steps=2))
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (GEN_RES, GEN_RES, 3), dtype=np.uint8)
    mask = np.zeros((GEN_RES, GEN_RES), bool)
    mask[8:24, 8:24] = True
    control = np.zeros_like(crop)
    control[10:20, 10:20] = 200
    weak, strong = (deoccluder.generate(crop, mask, control, s, seed=5) for s in (0.2, 1.0))
    assert weak.shape == (GEN_RES, GEN_RES, 3) and np.isfinite(weak).all() and 0 <= weak.min() <= weak.max() <= 1
    np.testing.assert_allclose(weak[~mask], crop[~mask] / 255.0, atol=1e-6)  # background kept
    assert np.abs(weak[mask] - strong[mask]).max() > 1e-3  # the control strength matters
    np.testing.assert_array_equal(weak, deoccluder.generate(crop, mask, control, 0.2, seed=5))  # seeded


def test_loading_names_the_missing_parts(tmp_path, tiny_deoccluder_dirs):
    with pytest.raises(FileNotFoundError, match=r"base inpainting model folder .*lacks \['model_index.json'"):
        load_deocclusion_pipeline(tmp_path, tiny_deoccluder_dirs[1])
    with pytest.raises(FileNotFoundError, match=r"ControlNet folder .*lacks \['config.json'\]"):
        load_deocclusion_pipeline(tiny_deoccluder_dirs[0], tmp_path)


def test_run_writes_crops_results_sheets_and_the_pair_index(two_rank_run):
    run = two_rank_run
    keys = [key for _, key in run.frames]
    assert [c["frames"] for c in run.counts] == [2, 1]  # rank 0 takes frames 0 and 2, rank 1 frame 1
    assert sum(c["generated"] for c in run.counts) == FRAMES and sum(c["failed"] for c in run.counts) == 0
    assert not list(run.layout.index_path.parent.glob("*.shard*"))  # shards merged and removed
    pairs = load_pair_index(run.layout.index_path)
    assert sorted(pairs) == sorted(keys)
    raw = json.loads(run.layout.index_path.read_text())["pairs"]
    assert raw[keys[0]]["gen_image_path"] == f"dexycb_s0_train_v1/crops/{keys[0]}.png"  # relative to the index
    for position, (index, key) in enumerate(run.frames):
        result = json.loads(run.layout.result_path(key).read_text())
        crop = np.asarray(Image.open(pairs[key].gen_image_path))
        assert crop.shape == (STORE_RES, STORE_RES, 3)
        # the stub's scores, recomputed from the stored crop and from the original un-augmented fused crop
        assert pairs[key].gen_score == pytest.approx(crop.mean() / 255.0 * 100.0, rel=1e-5)
        record = run.dataset.record(index)
        original = build_sample(record, read_rgb(record.image_path), SampleSettings(res=STORE_RES),
                                np.random.default_rng(0))["img"]
        assert pairs[key].ori_score == pytest.approx(original.mean() * 100.0, rel=1e-5)
        scores = [c["score"] for c in result["candidates"]]
        assert [c["strength"] for c in result["candidates"]] == list(STRENGTHS)
        assert pairs[key].gen_score == min(scores) and pairs[key].strength == STRENGTHS[int(np.argmin(scores))]
        assert (result["status"], result["seed"], result["ori_score"]) == ("generated", position,
                                                                           pairs[key].ori_score)
        assert run.layout.sheet_path(key).is_file() == (position < 2)


def test_rerun_skips_finished_frames_and_redoes_missing_crops(two_rank_run):
    run = two_rank_run
    keys = [key for _, key in run.frames]
    stamps = {key: run.layout.result_path(key).stat().st_mtime_ns for key in keys}
    calls = []

    def counting_scorer(images, sample):
        calls.append(sample["key"])
        return mean_intensity_scorer(images, sample)

    tools = Tools(run.tools.deoccluder, counting_scorer, run.tools.mano_layer, run.tools.render_depth)
    settings = RunSettings(strengths=STRENGTHS, gen_res=GEN_RES, store_res=STORE_RES, sheets=0)
    counts = run_shard(run.dataset, run.frames, tools, settings, run.layout)
    assert (counts["resumed"], counts["generated"], calls) == (FRAMES, FRAMES, [])
    run.layout.crop_path(keys[1]).unlink()
    counts = run_shard(run.dataset, run.frames, tools, settings, run.layout)
    merge_shards(run.layout, 1)
    assert (counts["resumed"], calls) == (FRAMES - 1, [keys[1]])
    assert run.layout.crop_path(keys[1]).is_file()
    assert all(run.layout.result_path(k).stat().st_mtime_ns == stamps[k] for k in (keys[0], keys[2]))
    assert sorted(load_pair_index(run.layout.index_path)) == sorted(keys)


def test_nan_generations_are_recorded_as_failed_and_never_paired(tiny_dexycb, tiny_deoccluder_dirs, renderer,
                                                                  single_thread, tmp_path):
    from diffusers import AutoencoderKL

    base, controlnet = tiny_deoccluder_dirs
    poisoned = tmp_path / "base"
    shutil.copytree(base, poisoned)
    vae = AutoencoderKL.from_pretrained(poisoned / "vae")
    with torch.no_grad():
        vae.decoder.conv_out.bias.fill_(float("nan"))
    vae.save_pretrained(poisoned / "vae")
    dataset = dexycb_train(tiny_dexycb, res=STORE_RES)
    frames = grasping_frames(dataset)[:1]
    layout = OutputLayout(tmp_path / "deocc" / "pairs.json")
    settings = RunSettings(strengths=(0.5,), gen_res=GEN_RES, store_res=STORE_RES, sheets=1)
    counts = run_shard(dataset, frames, make_tools(tiny_dexycb, poisoned, controlnet, renderer), settings, layout)
    merge_shards(layout, 1)
    assert (counts["failed"], counts["generated"]) == (1, 0)
    result = json.loads(layout.result_path(frames[0][1]).read_text())
    assert result["status"] == "failed" and result["error"] == "every candidate failed"
    assert result["candidates"] == [{"strength": 0.5, "error": "non-finite (NaN/inf) generator output"}]
    assert not layout.crop_path(frames[0][1]).exists() and load_pair_index(layout.index_path) == {}
    assert layout.sheet_path(frames[0][1]).is_file()
    again = run_shard(dataset, frames, make_tools(tiny_dexycb, poisoned, controlnet, renderer), settings, layout)
    assert (again["resumed"], again["failed"]) == (1, 1)  # a recorded failure is finished too


def test_loader_pairs_grasping_frames_and_duplicates_the_others(two_rank_run, tiny_dexycb):
    run = two_rank_run
    pairs = load_pair_index(run.layout.index_path)
    dataset = dexycb_train(tiny_dexycb, res=STORE_RES, pairs=pairs, contrastive=True, filter_rule="occ",
                           occ_threshold=1.0, use_data_aug_h=False, use_data_aug_ho=False)
    index, key = run.frames[0]
    sample = dataset[index]
    assert sample["img"].shape == (6, STORE_RES, STORE_RES) and not bool(sample["is_filtered"])
    assert sample["gt_grasping"].tolist() == [True, False]
    generated = np.asarray(Image.open(pairs[key].gen_image_path)).transpose(2, 0, 1) / 255.0
    # the second image is the stored crop pasted back and re-cropped with the same (un-augmented) crop
    assert (np.abs(sample["img"][3:].numpy() - generated) < 1e-6).mean() > 0.95
    assert not torch.equal(sample["img"][:3], sample["img"][3:])
    other = next(i for i in range(len(dataset)) if not dataset.grasping[i])
    single = dataset[other]
    assert single["img"].shape == (6, STORE_RES, STORE_RES) and bool(single["is_filtered"])
    assert torch.equal(single["img"][:3], single["img"][3:])


@pytest.mark.slow
def test_cli_on_two_ranks_scores_with_a_checkpoint_and_writes_the_summary(tiny_dexycb, tiny_deoccluder_dirs,
                                                                          single_thread, tmp_path):
    """``accelerate launch`` (2 CPU ranks) ``-m data_creation.deocclusion.deocclude`` with a real scorer (HFL-Net checkpoint)."""
    from models import build_model
    from utils.checkpoint import save_checkpoint
    from utils.config import load_config
    from utils.metrics.hand import validation_scores

    res, frames = 64, 2
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "cfg.json").write_text(json.dumps({
        "base": {"mano_root": str(tiny_dexycb.mano_root)},
        "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "data_split": "s0",
                 "input_img_shape": [res, res]},
        "model": {"name": "hflnet"}}))
    torch.manual_seed(0)
    model = build_model(load_config(experiment)).eval()
    save_checkpoint(experiment / "test_model_best.pth", model.state_dict())
    index = tmp_path / "out" / "pairs.json"
    base, controlnet = tiny_deoccluder_dirs
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}  # 2 gloo ranks on the CPU: a one-GPU machine has no GPU for the second
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "yaml/2_gpu.yaml"),
               "-m", "data_creation.deocclusion.deocclude", "--model_dir", str(experiment), "--base_model", str(base),
               "--controlnet", str(controlnet), "--scorer_model_dir", str(experiment),
               "--scorer_checkpoint", str(experiment / "test_model_best.pth"), "--strengths", "0.5",
               "--gen_res", str(GEN_RES), "--steps", "1", "--limit", str(frames), "--sheets", "0",
               "--out_index", str(index)]
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "pairs" / "summary.json").read_text())
    dataset = dexycb_train(tiny_dexycb, res=res)
    assert {k: summary[k] for k in ("frames", "generated", "failed", "resumed", "non_grasping")} == {
        "frames": frames, "generated": frames, "failed": 0, "resumed": 0,
        "non_grasping": len(dataset) - int(np.sum(dataset.grasping))}
    pairs = load_pair_index(index)
    assert len(pairs) == frames and not list(index.parent.glob("*.shard*"))
    for i, key in grasping_frames(dataset)[:frames]:
        entry = pairs[key]
        record = dataset.record(i)
        sample = build_sample(record, read_rgb(record.image_path), SampleSettings(res=res),
                              np.random.default_rng(0))
        generated = np.asarray(Image.open(entry.gen_image_path), np.float32).transpose(2, 0, 1) / 255.0
        with torch.no_grad():
            out = model({"img": torch.from_numpy(np.stack([sample["img"], generated])),
                         **{name: torch.from_numpy(np.stack([sample[name]] * 2))
                            for name in ("bbox_hand", "bbox_obj", "mano_param")}})
        expected = [validation_scores(*(out[k][j:j + 1].numpy() for k in (
            "pred_joints3d_cam", "pred_verts3d_cam", "gt_joints3d_cam", "gt_verts3d_cam"))) for j in (0, 1)]
        assert (entry.ori_score, entry.gen_score, entry.strength) == pytest.approx(
            (expected[0]["score"], expected[1]["score"], 0.5), rel=1e-4)
        result = json.loads((tmp_path / "out" / "pairs" / "results" / f"{key}.json").read_text())
        assert result["gen_PA_MPVPE"] == pytest.approx(expected[1]["pa_mpvpe"], rel=1e-4)
        assert result["ori_MPJPE"] == pytest.approx(expected[0]["mpjpe"], rel=1e-4)
