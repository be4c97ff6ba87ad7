"""De-occlude the grasping training frames of a dataset split: the paired images for contrastive training.

For each grasping training frame of the dataset named by an experiment config (``data.name`` DEX_YCB_HOPE or HO3D_HOPE,
``data.root_dir``, ``data.data_split``): crop the fused hand+object region, render the GT MANO hand depth,
mask the object and hand (dilated), inpaint with SD-inpainting + a hand-depth ControlNet at each control
strength, score original and candidates with a hand pose checkpoint (``score = MPJPE + PA-MPJPE + MPVPE +
PA-MPVPE``), keep the lowest-scoring candidate. Writes the crops and the pair index the loaders read
(``<root>/deocc/{dexycb_<split>|ho3d}_train_v{gen_version}[_p{gen_part}].json``, datasets/deocc_pairs.py);
layout in data_creation/deocclusion/run.py, weight folders in data_creation/deocclusion/pipeline.py.
Resumable (finished frames are skipped) and shardable::

    python -m data_creation.deocclusion.deocclude --model_dir experiment/unihope.dexycb_s0 \\
        --base_model weights/sd15_inpainting --controlnet weights/handrefiner_depth_controlnet \\
        --scorer_model_dir experiment/hflnet.dexycb_s0 --scorer_checkpoint experiment/hflnet.dexycb_s0/test_model_best.pth
    accelerate launch --multi_gpu --num_processes 4 -m data_creation.deocclusion.deocclude ...   (rank r takes frames[r::4])

Offline trial: ``python -m data_creation.fixtures.tiny_deoccluder --out_dir /tmp/tiny`` then ``--base_model /tmp/tiny/base
--controlnet /tmp/tiny/controlnet --gen_res 64 --steps 2``.
"""
from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from accelerate.utils import gather_object

from data_creation.deocclusion.conditions import mesh_depth_renderer
from data_creation.deocclusion.pipeline import (DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, Deoccluder, GenerationSettings,
                                                load_deocclusion_pipeline)
from data_creation.deocclusion.run import OutputLayout, RunSettings, Tools, grasping_frames, merge_shards, run_shard
from data_creation.deocclusion.selection import build_model_scorer
from datasets import build_dataset
from datasets.deocc_pairs import pair_index_path
from datasets.registry import official_dataset_name
from models.blocks.mano_head import right_hand_mano_layer
from utils.atomic import atomic_write_json
from utils.config import load_config
from utils.errors import InputError, command_main
from utils.mano_io import resolve_mano_root
from utils.render import MeshRenderer
from utils.runtime import make_accelerator, progress

# file-name prefix of each dataset's pair index: cfg.data.name -> prefix (datasets/deocc_pairs.py naming)
INDEX_PREFIXES = {"DEX_YCB_HOPE": lambda cfg: f"dexycb_{cfg.data.data_split}", "HO3D_HOPE": lambda cfg: "ho3d"}


def parse_args(argv=None) -> argparse.Namespace:
    defaults = RunSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="experiment folder whose cfg.json names the dataset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override (repeatable), e.g. --set data.root_dir=\"/data/DexYCB\"")
    parser.add_argument("--base_model", required=True, help="local SD inpainting pipeline folder")
    parser.add_argument("--controlnet", required=True, help="local hand-depth ControlNet folder")
    parser.add_argument("--scorer_model_dir", required=True, help="experiment folder of the scoring model")
    parser.add_argument("--scorer_checkpoint", required=True, help="checkpoint (.pth) of the scoring model")
    parser.add_argument("--strengths", type=float, nargs="+", default=list(defaults.strengths))
    parser.add_argument("--gen_res", type=int, default=defaults.gen_res, help="generator input side (px)")
    parser.add_argument("--store_res", type=int, default=None, help="stored crop side (default: input size)")
    parser.add_argument("--mask_dilation", type=float, default=defaults.mask_dilation,
                        help="mask dilation as a fraction of gen_res")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps")
    parser.add_argument("--guidance_scale", type=float, default=7.5)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--negative_prompt", default=DEFAULT_NEGATIVE_PROMPT)
    parser.add_argument("--half", action="store_true", help="float16 generator (CUDA only)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--sheets", type=int, default=defaults.sheets, help="visual-check sheets of the first N")
    parser.add_argument("--limit", type=int, default=None, help="only the first N grasping frames")
    parser.add_argument("--retry_failed", action="store_true", help="redo frames recorded as failed")
    parser.add_argument("--out_index", default=None, help="pair index path (default: where the loader reads it)")
    return parser.parse_args(argv)


def default_index_path(cfg, dataset_root: Path) -> Path:
    """The pair index the dataset's loader reads for ``cfg`` (``data.gen_version`` / ``data.gen_part``)."""
    name = official_dataset_name(cfg.data.name)
    if name not in INDEX_PREFIXES:
        raise KeyError(f"no de-occlusion support for cfg.data.name={cfg.data.name!r}; known: {sorted(INDEX_PREFIXES)}")
    return pair_index_path(dataset_root, INDEX_PREFIXES[name](cfg), cfg.data.gen_version,
                           cfg.data.gen_part)


def run(args: argparse.Namespace) -> dict | None:
    """Run on this process's shard; the main process merges and returns the summary (others return None)."""
    accelerator = make_accelerator()
    if args.half and accelerator.device.type == "cpu":
        raise InputError("--half needs a CUDA device (float16 diffusion on the CPU is not supported)")
    main = accelerator.is_main_process
    cfg = load_config(args.model_dir, overrides=[*args.overrides, "data.contrastive=false"])
    dataset = build_dataset(cfg, "train")
    all_frames = grasping_frames(dataset)
    frames = all_frames[:args.limit] if args.limit is not None else all_frames
    layout = OutputLayout(args.out_index or default_index_path(cfg, dataset.root))
    settings = RunSettings(strengths=tuple(args.strengths), gen_res=args.gen_res,
                           store_res=args.store_res or int(cfg.data.input_img_shape[0]),
                           mask_dilation=args.mask_dilation, seed=args.seed, sheets=args.sheets,
                           retry_failed=args.retry_failed)
    dtype = torch.float16 if args.half else torch.float32
    pipeline = load_deocclusion_pipeline(args.base_model, args.controlnet, accelerator.device, dtype)
    generation = GenerationSettings(num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
                                    prompt=args.prompt, negative_prompt=args.negative_prompt)
    scorer = build_model_scorer(args.scorer_model_dir, args.scorer_checkpoint, accelerator.device)
    with MeshRenderer(settings.gen_res, settings.gen_res) as renderer:
        tools = Tools(Deoccluder(pipeline, generation), scorer, right_hand_mano_layer(
            resolve_mano_root(cfg.base.mano_root)), mesh_depth_renderer(renderer))
        counts = run_shard(dataset, frames, tools, settings, layout, accelerator.process_index,
                           accelerator.num_processes, progress=partial(progress, main_process=main))
    accelerator.wait_for_everyone()
    gathered = gather_object([dict(counts)])
    if not main:
        return None
    merge_shards(layout, accelerator.num_processes)
    summary = {name: sum(counts.get(name, 0) for counts in gathered) for name in gathered[0]}
    summary.update(non_grasping=len(dataset) - len(all_frames), index=str(layout.index_path))
    atomic_write_json(layout.summary_path, summary)
    return summary


def main(argv=None) -> None:
    summary = run(parse_args(argv))
    if summary is not None:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    command_main(main)
