"""De-occluder building blocks without the diffusion pipeline: conditions, candidate choice, layout, sheets,
and the loader's pair filter rules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from data_creation.deocclusion.conditions import (DEPTH_FLOOR, deocclusion_inputs, depth_condition,
                                                  inpainting_mask, mesh_depth_renderer)
from data_creation.deocclusion.run import OutputLayout, choose_candidate, generate_candidates, stored_image
from data_creation.deocclusion.selection import checked_metrics, lowest_score
from data_creation.deocclusion.sheets import CAPTION_HEIGHT, MIN_TILE, write_sheet
from datasets.deocc_pairs import PairEntry
from datasets.hand_object_sample import pair_is_filtered
from fixtures_deocclusion import dexycb_train, first_grasping


def test_depth_condition_maps_near_to_white_far_to_floor_background_black():
    depth = np.array([[0.0, 0.50], [0.60, 0.55]], np.float32)
    control = depth_condition(depth)
    assert control.shape == (2, 2, 3) and control.dtype == np.uint8
    assert (control[..., 0] == control[..., 2]).all()
    # nearest 0.50 -> 1.0, farthest 0.60 -> floor 0.25, 0.55 -> 0.25 + 0.75 * 0.5 = 0.625; background 0
    assert control[..., 0].tolist() == [[0, 255], [round(DEPTH_FLOOR * 255), round(0.625 * 255)]]
    assert not depth_condition(np.zeros((3, 3), np.float32)).any()


def test_inpainting_mask_is_dilated_union_of_object_and_hand():
    object_mask = np.zeros((7, 7), bool)
    hand_mask = np.zeros((7, 7), bool)
    object_mask[1, 1] = True
    hand_mask[5, 4] = True
    mask = inpainting_mask(object_mask, hand_mask, dilation_px=1)
    expected = np.zeros((7, 7), bool)
    expected[0:3, 0:3] = True
    expected[4:7, 3:6] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(inpainting_mask(object_mask, hand_mask, 0), object_mask | hand_mask)


def test_lowest_score_ignores_nan_and_takes_the_first_of_ties():
    assert lowest_score([3.0, float("nan"), 1.0, 1.0]) == 2
    assert lowest_score([float("nan"), float("inf")]) is None


def test_checked_metrics_requires_score_and_matching_lengths():
    with pytest.raises(ValueError, match="sample 'id_7'.*'score' entry is required"):
        checked_metrics({"mpjpe": [1.0]}, 1, "id_7")
    with pytest.raises(ValueError, match="'mpjpe' has 3 values for 2 images"):
        checked_metrics({"score": [1.0, 2.0], "mpjpe": [1.0, 2.0, 3.0]}, 2, "id_7")
    out = checked_metrics({"score": [1.0, 2.0], "extra": [0, 0]}, 2, "id_7")
    assert list(out) == ["score"]


class ScriptedScorer:
    """Returns known metrics, one row per image it receives; remembers what it was given."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float64)
        self.calls = []

    def __call__(self, images, sample):
        self.calls.append(images.clone())
        return {"score": self.scores, "mpjpe": self.scores / 4.0}


def _sample(res=8, value=0.5):
    return {"img": np.full((3, res, res), value, np.float32), "key": "id_1"}


def test_choose_candidate_picks_the_lowest_score_and_skips_failed_candidates():
    images = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)]
    entries = [{"strength": s} for s in (0.4, 0.55, 0.7, 1.0)]
    entries[1]["error"] = "non-finite (NaN/inf) generator output"
    # rows: original, then the three successful candidates (strengths 0.4, 0.7, 1.0)
    scorer = ScriptedScorer([30.0, 20.0, 10.0, 10.0])
    outcome = choose_candidate("id_1", _sample(), entries, [images[0], None, images[1], images[2]], scorer)
    assert outcome["status"] == "generated"
    assert outcome["chosen"] == 2 and outcome["strength"] == 0.7  # first of the tied lowest scores
    assert (outcome["ori_score"], outcome["gen_score"]) == (30.0, 10.0)
    assert (outcome["ori_MPJPE"], outcome["gen_MPJPE"]) == (7.5, 2.5)
    assert [e.get("score") for e in entries] == [20.0, None, 10.0, 10.0]
    assert [bool(e.get("chosen")) for e in entries] == [False, False, True, False]
    given = scorer.calls[0]
    assert given.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(given[:, 0, 0, 0].numpy(), [0.5, 10 / 255, 20 / 255, 30 / 255], rtol=1e-6)


def test_choose_candidate_fails_when_nothing_is_finite():
    entries = [{"strength": 0.5, "error": "x"}]
    assert choose_candidate("id_1", _sample(), entries, [None], ScriptedScorer([]))["status"] == "failed"
    entries = [{"strength": 0.5}]
    outcome = choose_candidate("id_1", _sample(), entries, [np.zeros((8, 8, 3), np.uint8)],
                               ScriptedScorer([5.0, float("nan")]))
    assert outcome == {"status": "failed", "error": "no candidate has a finite score"}
    assert entries[0]["error"] == "non-finite score"


class ScriptedDeoccluder:
    """Generator double: a constant image per strength, NaN for the strengths in ``nan_at``, raises at ``fail_at``."""

    def __init__(self, nan_at=(), fail_at=()):
        self.nan_at, self.fail_at = nan_at, fail_at

    def generate(self, crop, inpaint_mask, control, strength, seed):
        if strength in self.fail_at:
            raise RuntimeError("out of memory")
        return np.full(crop.shape, np.nan if strength in self.nan_at else strength, np.float32)


def test_generate_candidates_records_nan_and_exceptions():
    inputs = type("Inputs", (), dict(crop=np.zeros((16, 16, 3), np.uint8), inpaint_mask=np.ones((16, 16), bool),
                                     control=np.zeros((16, 16, 3), np.uint8)))
    entries, images = generate_candidates(inputs, ScriptedDeoccluder(nan_at=(0.5,), fail_at=(0.7,)),
                                          (0.4, 0.5, 0.7), seed=3, store_res=8)
    assert entries == [{"strength": 0.4}, {"strength": 0.5, "error": "non-finite (NaN/inf) generator output"},
                       {"strength": 0.7, "error": "RuntimeError: out of memory"}]
    assert images[1] is None and images[2] is None
    assert images[0].shape == (8, 8, 3) and (images[0] == round(0.4 * 255)).all()


def test_stored_image_resizes_and_quantises():
    generated = np.zeros((16, 16, 3), np.float32)
    generated[:, 8:] = 1.0
    stored = stored_image(generated, 8)
    assert stored.dtype == np.uint8 and stored.shape == (8, 8, 3)
    assert (stored[:, :4] == 0).all() and (stored[:, 4:] == 255).all()
    assert stored_image(np.full((8, 8, 3), 2.0, np.float32), 8).min() == 255  # clipped


def test_output_layout_paths_and_key_validation(tmp_path):
    layout = OutputLayout(tmp_path / "deocc" / "ho3d_train_v1_p2.json")
    assert layout.crop_path("ABF10/0012") == tmp_path / "deocc" / "ho3d_train_v1_p2" / "crops" / "ABF10" / "0012.png"
    assert layout.shard_path(1, 4) == tmp_path / "deocc" / "ho3d_train_v1_p2.shard1of4.json"
    for bad in ("../x", "a//b", "a b", "/abs"):
        with pytest.raises(ValueError, match="cannot name an output file"):
            layout.result_path(bad)


def test_sheet_has_one_tile_per_input_and_candidate(tmp_path):
    crop = np.full((32, 32, 3), 100, np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[:16] = True
    entries = [{"strength": 0.4, "score": 12.3, "chosen": True}, {"strength": 1.0, "error": "non-finite"}]
    write_sheet(tmp_path / "s" / "id_1.png", crop, mask, crop, entries, [np.zeros((16, 16, 3), np.uint8), None])
    sheet = np.asarray(Image.open(tmp_path / "s" / "id_1.png"))
    assert sheet.shape == (MIN_TILE + CAPTION_HEIGHT, 5 * MIN_TILE, 3)
    # mask tile: masked rows tinted red (0.5 * 100 + 0.5 * 255), unmasked rows unchanged
    assert tuple(sheet[10, MIN_TILE + 10]) == (178, 82, 82)
    assert tuple(sheet[MIN_TILE - 10, MIN_TILE + 10]) == (100, 100, 100)
    assert tuple(sheet[10, 4 * MIN_TILE + 10]) == (96, 96, 96)  # failed candidate tile is grey


@pytest.mark.parametrize("rule, occ_ratio, gen_score, expected", [
    ("score", 0.5, 20.0, False),   # 20 + 1 - 30 < 0: the generation is better -> kept
    ("score", 0.5, 29.5, True),    # 29.5 + 1 - 30 >= 0 -> filtered
    ("occ", 0.95, 20.0, True),     # visible ratio above the threshold -> filtered
    ("occ", 0.85, 29.5, False),
    ("and", 0.95, 29.5, True), ("and", 0.95, 20.0, False), ("and", 0.85, 29.5, False),
    ("or", 0.85, 29.5, True), ("or", 0.95, 20.0, True), ("or", 0.85, 20.0, False),
    ("all", 0.1, 1.0, True),       # any other rule filters every pair
])
def test_pair_filter_rules(rule, occ_ratio, gen_score, expected):
    entry = PairEntry("x.png", ori_score=30.0, gen_score=gen_score, strength=0.7)
    assert pair_is_filtered(rule, occ_ratio, 0.9, entry, score_threshold=1.0) is expected


def test_depth_render_of_the_gt_hand_covers_the_annotated_joints(tiny_dexycb):
    """The GT mesh render (mirroring, crop intrinsics, wrist alignment) lands on the dataset's own 2D joints."""
    from datasets import geometry as geo
    from datasets.hand_object_sample import crop_region, mirrored_view
    from datasets.label_files import read_rgb
    from models.blocks.mano_head import right_hand_mano_layer
    from utils.render import MeshRenderer

    dataset = dexycb_train(tiny_dexycb)
    layer = right_hand_mano_layer(tiny_dexycb.mano_root)
    res = 64
    with MeshRenderer(res, res) as renderer:
        for left in (False, True):
            i = first_grasping(dataset, left)
            record = dataset.record(i)
            image = read_rgb(record.image_path)
            inputs = deocclusion_inputs(record, image, dataset.object_mask(i, record, image.shape[:2]), layer,
                                        mesh_depth_renderer(renderer), res, dilation_px=2)
            view = mirrored_view(record, image.shape[1])
            centre, scale = crop_region(view, True, image.shape[1], image.shape[0])
            joints = geo.apply_affine(geo.crop_transform(centre, scale, 0.0, res), view.joints_2d)
            inside = np.all((joints >= 0) & (joints < res - 1), axis=1)
            cols, rows = np.round(joints[inside]).astype(int).T
            # wrist and fingertips sit on the mesh border: every joint within 2.5 px (of 64) of a hand pixel
            distance = cv2.distanceTransform((~inputs.hand_mask).astype(np.uint8), cv2.DIST_L2, 3)
            assert distance[rows, cols].max() < 2.5, f"left={left}"
            assert inputs.hand_mask[rows, cols].mean() > 0.75, f"left={left}"
            z = view.joints_3d[:, 2]
            hand_depth = inputs.depth[inputs.hand_mask]
            assert z.min() - 0.03 < hand_depth.min() and hand_depth.max() < z.max() + 0.03
            assert inputs.inpaint_mask[inputs.hand_mask | inputs.object_mask].all()
            assert inputs.crop.shape == (res, res, 3) and inputs.control[inputs.hand_mask].min() > 0


def test_default_index_path_is_where_the_loader_reads(tmp_path):
    from data_creation.deocclusion.deocclude import default_index_path
    from utils.config import config_from_dict

    cfg = config_from_dict({"data": {"name": "DEX_YCB", "data_split": "s1", "gen_version": 2, "gen_part": 3}},
                           source="<test>")
    assert default_index_path(cfg, tmp_path) == tmp_path / "deocc" / "dexycb_s1_train_v2_p3.json"
    cfg = config_from_dict({"data": {"name": "HO3D", "gen_part": 1}}, source="<test>")
    assert default_index_path(cfg, tmp_path) == tmp_path / "deocc" / "ho3d_train_v1.json"
    cfg = config_from_dict({"data": {"name": "FREIHAND"}}, source="<test>")
    with pytest.raises(KeyError, match="FREIHAND.*known: \\['DEX_YCB_HOPE', 'HO3D_HOPE'\\]"):
        default_index_path(cfg, tmp_path)


def test_ho3d_frames_run_with_nested_keys(tiny_ho3d, tmp_path):
    """HO3D keys ``SEQ/ID`` become nested crop / result paths; the object mask is the dataset's model hull."""
    import json

    from data_creation.deocclusion.run import RunSettings, Tools, grasping_frames, merge_shards, run_shard
    from datasets.deocc_pairs import load_pair_index
    from datasets.hand_object_sample import SampleSettings
    from datasets.ho3d import HO3DDataset
    from models.blocks.mano_head import right_hand_mano_layer
    from utils.render import MeshRenderer

    dataset = HO3DDataset(tiny_ho3d.root, "train", SampleSettings(res=64, augment=True, rotation="uniform"))
    frames = grasping_frames(dataset)[:1]
    assert "/" in frames[0][1]
    layout = OutputLayout(tmp_path / "ho3d_train_v1.json")
    with MeshRenderer(32, 32) as renderer:
        tools = Tools(ScriptedDeoccluder(), ScriptedScorer([9.0, 4.0]), right_hand_mano_layer(tiny_ho3d.mano_root),
                      mesh_depth_renderer(renderer))
        counts = run_shard(dataset, frames, tools, RunSettings(strengths=(0.6,), gen_res=32, store_res=64), layout)
    merge_shards(layout, 1)
    key = frames[0][1]
    assert counts["generated"] == 1, json.loads(layout.result_path(key).read_text())
    entry = load_pair_index(layout.index_path)[key]
    assert entry.gen_image_path == str(layout.crop_path(key)) and (entry.ori_score, entry.gen_score) == (9.0, 4.0)
    crop = np.asarray(Image.open(entry.gen_image_path))
    assert crop.shape == (64, 64, 3) and (crop == round(0.6 * 255)).all()  # the scripted generator's output
