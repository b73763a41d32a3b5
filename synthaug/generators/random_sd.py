"""Random-weight Stable Diffusion pipelines built from configs, with no download: for tests (`tiny`, 8 MB on disk,
well under a second per image on a CPU), and for speed and memory benchmarks at the real size (`sd15`: the
UNet, VAE and text-encoder shapes of Stable Diffusion 1.5, 1.07 B parameters). Their images are noise; their
cost is the real one.

    python -c "from synthaug.generators.random_sd import save_random_pipeline; save_random_pipeline('runs/tiny-sd')"
    synthaug generator fit --dataset digits --generator sd-text --set model=runs/tiny-sd --set size=32 ...
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch

from synthaug.generators.stable_diffusion import require_pretrained_extra

# a character-level vocabulary: CLIPTokenizer needs vocab.json + merges.txt; with no merges every character is a
# token, which is all a random text encoder needs (each character bare and with the end-of-word mark </w>)
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789<>_-.,'!?()[]{}:;/&+=*#@"
MAX_TOKENS = 77  # CLIP's context length; the text encoder's position table must match it


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in CHARACTERS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def build_random_pipeline(preset: Literal["tiny", "sd15"] = "tiny", seed: int = 0) -> Any:
    """A StableDiffusionPipeline with random weights (seeded) of the given size."""
    require_pretrained_extra("a random Stable Diffusion pipeline")
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if preset not in ("tiny", "sd15"):
        raise ValueError(f"preset must be tiny or sd15, got {preset!r}")
    torch.manual_seed(seed)
    if preset == "tiny":  # the sizes of diffusers' own pipeline tests
        unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4,
                                    out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
        vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
        text = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32)
    else:  # stable-diffusion-v1-5's unet/, vae/ and text_encoder/ config.json
        unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                                    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4,
                            layers_per_block=2, sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4)
        text = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                    projection_dim=768, hidden_act="quick_gelu")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _tokenizer(Path(tmp))
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408 if preset == "sd15" else len(tokenizer), bos_token_id=0,
                                           eos_token_id=1, pad_token_id=1, max_position_embeddings=MAX_TOKENS, **text))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_random_pipeline(folder: str | Path, preset: Literal["tiny", "sd15"] = "tiny", seed: int = 0) -> Path:
    """Build a random pipeline and save it as a diffusers folder (safetensors) that `--set model=FOLDER` loads."""
    folder = Path(folder)
    build_random_pipeline(preset, seed).save_pretrained(folder, safe_serialization=True)
    return folder
