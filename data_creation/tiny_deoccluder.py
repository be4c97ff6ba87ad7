"""A tiny, randomly initialised de-occluder (SD inpainting + depth ControlNet) saved in the real folder layout.

Tests and the offline demo load it through exactly the path real weights take
(:func:`data_creation.deocclusion.pipeline.load_deocclusion_pipeline`, i.e. diffusers ``from_pretrained`` on two
local folders), so nothing is downloaded. Layout written under ``out_dir`` (diffusers ``save_pretrained``)::

    base/          model_index.json, unet/ (UNet2DConditionModel, in_channels = 9), vae/ (AutoencoderKL),
                   text_encoder/ (CLIPTextModel), tokenizer/ (CLIPTokenizer, letter vocabulary),
                   scheduler/ (DDIMScheduler)
    controlnet/    config.json + weights (ControlNetModel, conditioning_channels = 3)

Images must be multiples of 8 px (the VAE down-samples by 2, latents are H/2 x W/2); 32 or 64 px with 1-2
inference steps run in well under a second on a CPU. The ControlNet's output convolutions, zero-initialised in
diffusers, get random weights (std 0.5) here so that the control strength visibly changes the result.

Usage::

    python -m data_creation.tiny_deoccluder --out_dir /tmp/tiny_deoccluder
"""
from __future__ import annotations

import argparse
import json
import string
import tempfile
from pathlib import Path

BASE_DIR = "base"
CONTROLNET_DIR = "controlnet"
TEXT_DIM = 32
MAX_PROMPT_TOKENS = 77
BLOCK_CHANNELS = (32, 64)
CONTROL_OUTPUT_STD = 0.5


def _letter_tokenizer(folder: Path):
    """A CLIP BPE tokenizer over lowercase letters (no merges): every letter is a token; other text -> <eot>."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab))
    merges_file.write_text("#version: 0.2\n")
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=MAX_PROMPT_TOKENS), len(vocab)


def _text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=MAX_PROMPT_TOKENS, bos_token_id=0, eos_token_id=1,
        pad_token_id=1, projection_dim=TEXT_DIM))


def _unet_and_controlnet():
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    shared = dict(block_out_channels=BLOCK_CHANNELS, layers_per_block=1, cross_attention_dim=TEXT_DIM,
                  attention_head_dim=4, norm_num_groups=8,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"))
    unet = UNet2DConditionModel(in_channels=9, out_channels=4, sample_size=16,
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), **shared)
    controlnet = ControlNetModel(in_channels=4, conditioning_channels=3,
                                 conditioning_embedding_out_channels=(8, 16), **shared)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    for conv in zero_convs:
        torch.nn.init.normal_(conv.weight, std=CONTROL_OUTPUT_STD)
    return unet, controlnet


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8,
                         layers_per_block=1)


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def write_tiny_deoccluder(out_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Build the tiny pipeline (weights drawn with ``torch.manual_seed(seed)``) and save it under ``out_dir``.

    Returns:
        (base inpainting folder, ControlNet folder).
    """
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer, vocab_size = _letter_tokenizer(Path(scratch))
        unet, controlnet = _unet_and_controlnet()
        pipeline = StableDiffusionInpaintPipeline(
            vae=_vae(), text_encoder=_text_encoder(vocab_size), tokenizer=tokenizer, unet=unet,
            scheduler=_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipeline.save_pretrained(out_dir / BASE_DIR)
    controlnet.save_pretrained(out_dir / CONTROLNET_DIR)
    return out_dir / BASE_DIR, out_dir / CONTROLNET_DIR


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny random de-occluder pipeline (no download).")
    parser.add_argument("--out_dir", required=True, help="folder to create base/ and controlnet/ in")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    base, controlnet = write_tiny_deoccluder(args.out_dir, args.seed)
    print(f"base inpainting model: {base}\nhand-depth ControlNet: {controlnet}")


if __name__ == "__main__":
    main()
