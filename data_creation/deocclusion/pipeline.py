"""Loading and calling the inpainting + hand-depth ControlNet pipeline (diffusers), from local folders only.

Expected folders (diffusers ``save_pretrained`` layout; nothing is downloaded, ``local_files_only=True``)::

    <base_dir>/            an SD-1.5 *inpainting* pipeline (UNet with 9 input channels)
        model_index.json
        unet/  vae/  text_encoder/  tokenizer/  scheduler/     (safety_checker/, feature_extractor/ ignored)
    <controlnet_dir>/      a depth ControlNet for SD-1.5 (3-channel conditioning image)
        config.json  diffusion_pytorch_model.safetensors

HandRefiner-compatible weights (on a machine with internet access):

1. base: ``huggingface-cli download runwayml/stable-diffusion-inpainting --local-dir <base_dir>`` (or any
   SD-1.5 inpainting checkpoint saved with ``StableDiffusionInpaintPipeline.save_pretrained``);
2. ControlNet: HandRefiner releases ``inpaint_depth_control.ckpt`` (a ControlNet-v1.1-format depth ControlNet
   fine-tuned on hand meshes). Convert it with diffusers' script::

       python scripts/convert_original_controlnet_to_diffusers.py \\
           --checkpoint_path inpaint_depth_control.ckpt \\
           --original_config_file cldm_v15.yaml --dump_path <controlnet_dir> --to_safetensors

   (``cldm_v15.yaml`` from the ControlNet v1.1 repository). Any diffusers depth ControlNet
   (e.g. ``lllyasviel/control_v11f1p_sd15_depth``) also works, less specialised for hands.

``data_creation/fixtures/tiny_deoccluder.py`` writes a tiny random pipeline in the same layout for tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DEFAULT_PROMPT = "a realistic human hand, bare hand, nothing held, detailed fingers"
DEFAULT_NEGATIVE_PROMPT = "object, holding, deformed hand, extra fingers, blurry, low quality"


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings shared by every call (plain values; the CLI fills them)."""

    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT


def _check_folder(folder: Path, required: tuple, what: str) -> None:
    missing = [name for name in required if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{what} folder {folder} lacks {missing}; expected a diffusers save_pretrained "
                                f"layout (see data_creation/deocclusion/pipeline.py)")


def load_deocclusion_pipeline(base_dir: str | Path, controlnet_dir: str | Path, device: torch.device | str = "cpu",
                              dtype: torch.dtype = torch.float32):
    """``StableDiffusionControlNetInpaintPipeline`` from a local inpainting model and a local ControlNet.

    Raises:
        FileNotFoundError: a folder or one of its required parts is missing (names the folder and the parts).
    """
    # diffusers (heavy, optional) only when a pipeline is loaded: the de-occluder's other parts run without it
    from diffusers import ControlNetModel, StableDiffusionControlNetInpaintPipeline

    base_dir, controlnet_dir = Path(base_dir), Path(controlnet_dir)
    _check_folder(base_dir, ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"),
                  "base inpainting model")
    _check_folder(controlnet_dir, ("config.json",), "ControlNet")
    controlnet = ControlNetModel.from_pretrained(controlnet_dir, dtype=dtype, local_files_only=True)
    pipeline = StableDiffusionControlNetInpaintPipeline.from_pretrained(
        base_dir, controlnet=controlnet, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, dtype=dtype, local_files_only=True)
    if pipeline.unet.config.in_channels != 9:
        raise ValueError(f"{base_dir}/unet has in_channels={pipeline.unet.config.in_channels}; an inpainting "
                         f"UNet (9 channels: latent + mask + masked-image latent) is required")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


class Deoccluder:
    """Calls the pipeline on one frame's inputs at a given control strength.

    ``generate(crop, inpaint_mask, control, strength, seed)`` -> (R, R, 3) float32 RGB in [0, 1] (NaN if the
    pipeline produced NaN; the caller checks). Pixels outside the mask are the original crop's (the VAE round
    trip would otherwise alter the background), so a pair differs only where the object and hand were. The
    same ``seed`` gives the same starting noise: candidates of one frame differ only by their control strength.
    """

    def __init__(self, pipeline, settings: GenerationSettings):
        self.pipeline = pipeline
        self.settings = settings

    def generate(self, crop: np.ndarray, inpaint_mask: np.ndarray, control: np.ndarray, strength: float,
                 seed: int) -> np.ndarray:
        """crop (R, R, 3) uint8, inpaint_mask (R, R) bool (True = repaint), control (R, R, 3) uint8."""
        res = crop.shape[0]
        if crop.shape[:2] != (res, res) or res % 8:
            raise ValueError(f"generator input must be square with a side that is a multiple of 8, got {crop.shape}")
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        result = self.pipeline(
            prompt=self.settings.prompt, negative_prompt=self.settings.negative_prompt,
            image=Image.fromarray(crop), mask_image=Image.fromarray(inpaint_mask.astype(np.uint8) * 255),
            control_image=Image.fromarray(control), height=res, width=res,
            num_inference_steps=self.settings.num_inference_steps, guidance_scale=self.settings.guidance_scale,
            controlnet_conditioning_scale=float(strength), generator=generator, output_type="np")
        generated = np.asarray(result.images[0], dtype=np.float32)
        return np.where(inpaint_mask[..., None], generated, crop.astype(np.float32) / 255.0)
