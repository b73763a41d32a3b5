"""Generation speed and peak memory of the pretrained generators, on random-weight Stable Diffusion pipelines.

Weights are random (nothing to download), so the images are noise, but the work per image is the real one:
`--preset sd15` builds the UNet, VAE and text encoder of Stable Diffusion 1.5 (1.07 B parameters) from their
configs, `--preset tiny` the 6.5 MB toy of the tests. The pipeline is saved to a folder and loaded by the
generator exactly as a downloaded model would be (`--model-dir` keeps it between runs).

    python benchmarks/pretrained_speed.py --preset tiny --size 32 --steps 25 --images 32          # CPU, seconds
    python benchmarks/pretrained_speed.py --preset sd15 --size 512 --steps 25 --images 16 \\
        --device cuda --precision fp16 [--cpu-offload] [--attention-slicing]                     # GPU
    python benchmarks/pretrained_speed.py --preset sd15 --size 512 --steps 2 --images 1 --mode text  # CPU, minutes

Prints one JSON line: images/s (after one warm-up image), seconds per image, load seconds, and peak memory
(process RSS on CPU; torch's peak allocation on GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def random_model(preset: str, parent: str | Path) -> Path:
    """The random-weight pipeline folder `parent/random-PRESET`, built and saved the first time."""
    from synthaug.generators.random_sd import save_random_pipeline

    model_dir = Path(parent) / f"random-{preset}"
    if not (model_dir / "model_index.json").is_file():
        start = time.perf_counter()
        save_random_pipeline(model_dir, preset)
        print(f"built and saved {model_dir} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return model_dir


def sd_generator(model_dir: Path, mode: str, size: int, steps: int, guidance: float, device: str, precision: str,
                 batch_size: int, image_size: int = 32, strength: float = 0.75, cpu_offload: bool = False,
                 attention_slicing: bool = False) -> tuple["Generator", "ImageDataset"]:  # noqa: F821
    """An sd-text (mode text) or sd-img2img generator on `model_dir`, fitted (loaded) on 8 random RGB images of
    two classes, and those images (the img2img sources)."""
    from synthaug.data import ImageDataset
    from synthaug.generators.api import build_generator

    data = ImageDataset(torch.randint(0, 256, (8, 3, image_size, image_size), dtype=torch.uint8),
                        torch.arange(8) % 2, ["cat", "dog"])
    settings = {"model": str(model_dir), "size": size, "sampling_steps": steps, "guidance_scale": guidance,
                "device": device, "precision": precision, "cpu_offload": cpu_offload,
                "attention_slicing": attention_slicing, "generation_batch_size": batch_size, "progress": False}
    if mode == "img2img":
        settings["strengths"] = [strength]
    gen = build_generator("sd-text" if mode == "text" else "sd-img2img", settings, data)
    gen.fit(data)
    return gen, data


def generate(gen, data, mode: str, n: int, batch_size: int) -> None:
    """`n` images through the generator's sample() (img2img: from the data's images in turn), waiting for the GPU."""
    labels = torch.arange(n) % 2
    kwargs = {"sources": data.images[torch.arange(n) % len(data)]} if mode == "img2img" else {}
    gen.sample(labels, seed=0, batch_size=batch_size, **kwargs)
    if gen.device.type == "cuda":
        torch.cuda.synchronize(gen.device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=["tiny", "sd15"], default="tiny")
    p.add_argument("--mode", choices=["text", "img2img"], default="text", help="sd-text or sd-img2img")
    p.add_argument("--strength", type=float, default=0.75, help="img2img strength (runs about strength x steps steps)")
    p.add_argument("--size", type=int, default=32, help="generation size in pixels")
    p.add_argument("--steps", type=int, default=25, help="denoising steps")
    p.add_argument("--guidance", type=float, default=7.5, help="guidance scale (1 halves the UNet work)")
    p.add_argument("--images", type=int, default=16, help="images timed (after one warm-up image)")
    p.add_argument("--batch-size", type=int, default=8, help="images per pipeline call")
    p.add_argument("--image-size", type=int, default=32, help="dataset image size the outputs are resized to")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--cpu-offload", action="store_true")
    p.add_argument("--attention-slicing", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--model-dir", help="where the random pipeline is saved (reused if present; default: a temp folder)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = tempfile.TemporaryDirectory() if not args.model_dir else None
    model_dir = random_model(args.preset, args.model_dir or tmp.name)  # type: ignore[union-attr]
    rss_before_load = peak_rss_mb()
    cuda = args.device.startswith("cuda")
    start = time.perf_counter()
    gen, data = sd_generator(model_dir, args.mode, args.size, args.steps, args.guidance, args.device, args.precision,
                             args.batch_size, args.image_size, args.strength, args.cpu_offload, args.attention_slicing)
    load_seconds = time.perf_counter() - start
    pipe = gen.text_pipeline()
    parameters = {part: round(sum(p.numel() for p in getattr(pipe, part).parameters()) / 1e6, 1)
                  for part in ("unet", "vae", "text_encoder")}

    generate(gen, data, args.mode, 1, args.batch_size)  # warm-up: first-call allocations and kernel selection
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generate(gen, data, args.mode, args.images, args.batch_size)
    seconds = time.perf_counter() - start
    row = {"preset": args.preset, "mode": args.mode, "device": args.device, "precision": args.precision,
           "threads": torch.get_num_threads(), "size": args.size, "steps": args.steps, "guidance": args.guidance,
           "strength": args.strength if args.mode == "img2img" else None, "batch_size": args.batch_size,
           "cpu_offload": args.cpu_offload, "attention_slicing": args.attention_slicing, "images": args.images,
           "images_per_s": round(args.images / seconds, 4), "seconds_per_image": round(seconds / args.images, 3),
           "load_seconds": round(load_seconds, 2), "parameters_millions": parameters, "peak_rss_mb": round(peak_rss_mb()),
           "rss_before_load_mb": round(rss_before_load)}
    if cuda:
        row["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        row["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(row))


if __name__ == "__main__":
    main()
