"""The ``predict.py`` command: images, folders or videos in; overlays, JSON records and meshes out.

    python predict.py photo.jpg frames/ --model_dir D --resume D/test_model_best.pth --boxes boxes.json --out out/
    python predict.py clip.mp4 --model_dir D --resume C.pth --detector --smooth --out out/
    python predict.py crop.png --model_dir D --onnx m.onnx --full_image --side left --out out/

Without inputs, the images a ``--boxes`` file names by path are used. Per image ``NAME`` (its stem, or its path
below the inputs' common folder joined by ``__`` when stems repeat): ``out/NAME_overlay.png``, ``out/NAME.json``
and with ``--save_mesh`` ``out/NAME_hand{k}.obj``; ``--montage PNG`` tiles every image's hands into one picture.
Per video ``NAME``: ``out/NAME_overlay.mp4``, ``out/NAME_frames/frame_{i:06d}.json`` (one record per frame) and
with ``--save_mesh`` ``out/NAME_frames/frame_{i:06d}_hand{k}.obj``. Bad input ends with exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.label_files import read_rgb
from datasets.registry import sample_settings
from engine.cli import add_weight_arguments, base_parser, load_run_config
from engine.eval_command import load_eval_weights
from engine.export_onnx import export_model
from engine.predict import PredictInputError
from engine.predict.detector import detect_hands, detector_python
from engine.predict.hand_boxes import SIDES, HandBox, full_image_box, hands_for, read_boxes_file
from engine.predict.network import OnnxPredictor, TorchPredictor
from engine.predict.outputs import (RendererCache, hand_faces, image_record, montage, montage_tile, overlay_picture,
                                    write_obj, write_record)
from engine.predict.pipeline import HandPipeline
from engine.predict.video import VIDEO_SUFFIXES, HandSmoother, VideoSink, video_frames
from models import build_model
from utils.camera import pinhole_intrinsics
from utils.mano_io import load_mano_assets, resolve_mano_root
from utils.runtime import make_accelerator, progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def predict_parser() -> argparse.ArgumentParser:
    parser = base_parser("Reconstruct the hands in your own images and videos with a trained experiment.")
    parser.add_argument("inputs", nargs="*", help="image files, folders of images, video files")
    add_weight_arguments(parser)
    parser.add_argument("--onnx", default=None, help="run this ONNX file (engine/export_onnx.py) with ONNX Runtime")
    parser.add_argument("--export_onnx", default=None, metavar="PATH", help="write the model as ONNX to PATH")
    parser.add_argument("--out", default=None, help="output folder (required with inputs)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--boxes", default=None, help="hand boxes file (.json or .csv; engine/predict/hand_boxes.py)")
    source.add_argument("--detector", action="store_true", help="find hands with MediaPipe (make detector-venv)")
    source.add_argument("--full_image", action="store_true", help="each image is one hand crop")
    parser.add_argument("--detector_python", default=None, help="python of the detector environment "
                                                                "(default .venv-detector/bin/python)")
    parser.add_argument("--side", choices=SIDES, default="right", help="hand side for --full_image")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, default=None, help="focal length px (principal point at the centre)")
    camera.add_argument("--intrinsics", type=float, nargs=4, default=None, metavar=("FX", "FY", "CX", "CY"))
    parser.add_argument("--save_mesh", action="store_true", help="also write one .obj per hand")
    parser.add_argument("--montage", default=None, metavar="PNG", help="also tile every image's hands (photo "
                                                                        "window + side view) into one picture")
    parser.add_argument("--smooth", action="store_true", help="videos: One-Euro smoothing of the 3D hands")
    parser.add_argument("--smooth_min_cutoff", type=float, default=1.0, help="One-Euro cut-off at rest (Hz)")
    parser.add_argument("--smooth_beta", type=float, default=10.0, help="One-Euro speed coefficient (per m/s)")
    return parser


def camera_intrinsics(args, width: int, height: int, hands: list[HandBox]) -> np.ndarray:
    """(3, 3) px: ``--intrinsics``, else ``--focal`` at the image centre, else the image's ``intrinsics`` in the
    boxes file, else HaMeR's default focal (utils/camera.py)."""
    listed = next((hand.intrinsics for hand in hands if hand.intrinsics is not None), None)
    if args.intrinsics is None and args.focal is None and listed is not None:
        fx, fy, cx, cy = listed
    elif args.intrinsics is not None:
        fx, fy, cx, cy = args.intrinsics
    else:
        return pinhole_intrinsics(width, height, args.focal)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def collect_inputs(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """(images, videos) from files and folders (a folder contributes its images, sorted by name)."""
    images, videos = [], []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            images += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif not path.is_file():
            raise PredictInputError(f"input {path} does not exist")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            raise PredictInputError(f"input {path}: expected an image {IMAGE_SUFFIXES} or a video {VIDEO_SUFFIXES}")
    if not images and not videos:
        raise PredictInputError(f"no images or videos found in {paths}")
    return images, videos


@dataclass
class Run:
    """Everything the per-input loops share."""

    args: argparse.Namespace
    pipeline: HandPipeline
    faces: np.ndarray
    renderers: RendererCache
    out: Path
    names: dict

    def hands(self, boxes, image: np.ndarray, *names: str) -> list[HandBox]:
        if self.args.full_image:
            return [full_image_box(image.shape[1], image.shape[0], self.args.side)]
        return hands_for(boxes, *names)

    def frame(self, image, hands, where, smoother=None):
        """(placed hands, smoothed when asked; intrinsics (3, 3); overlay picture) of one image or frame."""
        height, width = image.shape[:2]
        intrinsics = camera_intrinsics(self.args, width, height, hands)
        placed = self.pipeline(image, hands, intrinsics, where)
        if smoother is not None:
            placed = smoother(placed)
        return placed, intrinsics, overlay_picture(image, placed, self.faces, intrinsics, self.renderers)

    def save_meshes(self, placed, prefix: Path) -> None:
        if self.args.save_mesh:
            for k, hand in enumerate(placed):
                write_obj(Path(f"{prefix}_hand{k}.obj"), hand.verts_cam, hand_faces(self.faces, hand.hand.is_left))


def predict_images(run: Run, images: list[Path], boxes) -> int:
    """Overlay, record and meshes of every image; returns the number of hands reconstructed."""
    count, tiles = 0, []
    for path in progress(images, "images"):
        image = read_rgb(path)
        hands = run.hands(boxes, image, str(path), path.name)
        if not hands:
            print(f"predict.py: no hand boxes for image {path}: nothing reconstructed there", file=sys.stderr)
        placed, intrinsics, overlay = run.frame(image, hands, f"image {path}")
        name = run.names[path]
        Image.fromarray(overlay).save(run.out / f"{name}_overlay.png")
        write_record(run.out / f"{name}.json",
                     image_record(str(path), image.shape[1], image.shape[0], intrinsics, placed))
        run.save_meshes(placed, run.out / name)
        count += len(placed)
        if run.args.montage:
            tiles.append(montage_tile(overlay, image.shape[1], placed))
    if tiles:
        Image.fromarray(montage(tiles)).save(run.args.montage)
    return count


def predict_video(run: Run, path: Path, boxes) -> int:
    """Overlay ``.mp4`` and one record per frame of a video; returns the number of frames."""
    fps, total, frames = video_frames(path)
    folder = run.out / f"{run.names[path]}_frames"
    folder.mkdir(parents=True, exist_ok=True)
    smoother = HandSmoother(fps, run.args.smooth_min_cutoff, run.args.smooth_beta) if run.args.smooth else None
    sink = VideoSink(run.out / f"{run.names[path]}_overlay.mp4", fps)
    index = -1
    try:
        for index, image in enumerate(progress(frames, path.name, total=total or None)):
            placed, intrinsics, overlay = run.frame(image, run.hands(boxes, image, str(index)),
                                                    f"video {path}, frame {index}", smoother)
            sink.write(overlay)
            write_record(folder / f"frame_{index:06d}.json",
                         image_record(str(path), image.shape[1], image.shape[0], intrinsics, placed, frame=index,
                                      time_s=round(index / fps, 6), smoothed=smoother is not None))
            run.save_meshes(placed, folder / f"frame_{index:06d}")
    finally:
        sink.close()
    return index + 1


def make_predictor(args, cfg, settings):
    """ONNX Runtime on ``--onnx``, else the experiment's model with its weights (device from the Accelerator);
    ``--export_onnx`` writes the latter first."""
    if args.onnx:
        return OnnxPredictor(args.onnx)
    model = build_model(cfg)
    load_eval_weights(model, args)
    if args.export_onnx:
        names = export_model(model, settings, args.export_onnx)
        print(f"ONNX written: {args.export_onnx} (outputs {', '.join(names)})")
    return TorchPredictor(model, make_accelerator().device)


def hand_source(args, images: list[Path], videos: list[Path], listed) -> tuple:
    """(boxes of the images, {video: its boxes}): the ``--boxes`` file (``listed``), the detector's, or
    (None, {}) for ``--full_image``."""
    if args.full_image:
        return None, {}
    if listed is not None:
        return listed, {video: listed for video in videos}
    if not args.detector:
        raise PredictInputError("say where the hands are: --boxes FILE, --detector or --full_image")
    python = detector_python(args.detector_python)
    out = Path(args.out)
    image_boxes = detect_hands(python, images, out / "detected_boxes.json") if images else {}
    return image_boxes, {video: detect_hands(python, [video], out / f"{video.stem}_detected_boxes.json")
                         for video in videos}


def listed_images(boxes: dict) -> list[str]:
    """The images a boxes file names by path (used when no inputs are given)."""
    paths = [name for name in boxes if Path(name).is_file()]
    if not paths:
        raise PredictInputError("no inputs given, and the boxes file names no existing image file")
    return paths


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """Output name of each input: its stem, or, when stems repeat (DexYCB-style trees name every frame
    ``color_000000.jpg``), its path below the inputs' common folder with ``__`` between the parts."""
    if len({path.stem for path in paths}) == len(paths):
        return {path: path.stem for path in paths}
    resolved = [path.resolve() for path in paths]
    common = Path(os.path.commonpath(resolved))
    return {path: "__".join(full.relative_to(common).with_suffix("").parts) for path, full in zip(paths, resolved)}


def main(argv=None) -> dict:
    """The predict.py flow: inputs -> hands -> placed meshes and outputs; returns counts of what was processed."""
    args = predict_parser().parse_args(argv)
    cfg = load_run_config(args)
    settings = sample_settings(cfg, "test", "dexycb")
    listed = read_boxes_file(args.boxes) if args.boxes else None
    inputs = args.inputs or (listed_images(listed) if listed is not None else [])
    if inputs and not args.out:
        raise PredictInputError("--out FOLDER is required with inputs")
    if args.onnx and args.export_onnx:
        raise PredictInputError("--export_onnx exports the PyTorch model: give --resume, not --onnx")
    if not inputs and not args.export_onnx:
        raise PredictInputError("nothing to do: give images / folders / videos, or --export_onnx PATH")
    images, videos = collect_inputs(inputs) if inputs else ([], [])
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    predictor = make_predictor(args, cfg, settings)
    if not inputs:
        return {"images": 0, "hands": 0, "videos": {}}
    image_boxes, video_boxes = hand_source(args, images, videos, listed)
    faces = load_mano_assets(resolve_mano_root(cfg.base.mano_root), "right").faces
    run = Run(args, HandPipeline(predictor, settings, cfg.data.bbox_hand_normalize_2d_joint), faces, RendererCache(),
              Path(args.out), output_stems(images + videos))
    try:
        hands = predict_images(run, images, image_boxes)
        frames = {str(video): predict_video(run, video, video_boxes.get(video)) for video in videos}
    finally:
        run.renderers.close()
    print(f"{len(images)} image(s), {hands} hand(s); {len(videos)} video(s), {sum(frames.values())} frame(s); "
          f"outputs in {args.out}")
    return {"images": len(images), "hands": hands, "videos": frames}
