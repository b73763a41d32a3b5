"""Generator throughput: training steps/s and sampling images/s of every registered generator at 28x28.

Default settings of each generator (the ones `synthaug generator fit` uses), Fashion-MNIST-shaped
data (the real set when installed, else digits upscaled to 28x28). On a machine with CUDA the GPU path
is automatic: bf16 autocast, channels_last, and a larger batch. Run:

    .venv/bin/python benchmarks/generators.py [--steps 30] [--threads 2] [--generators cgan,cvae,diffusion]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


def load_train(dataset: str) -> "ImageDataset":  # noqa: F821
    from synthaug.data import DataConfig, DatasetError, load_data

    try:
        return load_data(DataConfig(dataset)).train
    except DatasetError as exc:
        print(f"{exc}\nfalling back to digits upscaled to 28x28")
        return load_data(DataConfig("digits", image_size=28)).train


def bench_one(name: str, train, steps: int, batch_size: int, precision: str, sample_count: int,
              settings: dict | None = None) -> dict:
    """Timed training steps and sampling of one generator; `settings`: its config fields (defaults for the rest)."""
    from synthaug.generators.api import build_generator

    settings = {**(settings or {}), "steps": 3, "batch_size": batch_size, "precision": precision, "progress": False,
                "log_every": 10_000, "checkpoint_every": 10_000, "sample_every": 10_000}
    gen = build_generator(name, settings, train)
    gen.fit(train)  # warm-up: allocator, oneDNN / cuDNN kernel choice
    gen.cfg.steps = steps
    if gen.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    gen.fit(train)  # a fresh optimiser state, same networks: the timing is what matters here
    if gen.device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    labels = torch.arange(sample_count) % gen.num_classes
    gen.sample(labels[: min(sample_count, 20)], seed=1)  # warm-up
    start = time.perf_counter()
    gen.sample(labels, seed=0, batch_size=256 if gen.device.type == "cpu" else 1024)
    sample_seconds = time.perf_counter() - start
    params = sum(p.numel() for net in gen.networks().values() for p in net.parameters()
                 if net is not getattr(getattr(gen, "ema", None), "model", None))
    return {"generator": name, "device": gen.device.type, "precision": "bf16" if gen.bf16 else "fp32",
            "batch": batch_size, "params_M": params / 1e6, "steps_per_s": steps / train_seconds,
            "train_images_per_s": steps * batch_size / train_seconds, "samples_per_s": sample_count / sample_seconds,
            "sample_count": sample_count}


def main() -> None:
    from synthaug.generators import GENERATORS

    parser = argparse.ArgumentParser()
    parser.add_argument("--generators", default=",".join(GENERATORS.available()))
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per generator")
    parser.add_argument("--batch-size", type=int, help="default: 64 on CPU, 256 on GPU")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--samples", type=int, default=2000, help="images sampled (diffusion: a tenth of this)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    batch = args.batch_size or (256 if cuda else 64)
    train = load_train(args.dataset)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, {'GPU ' + torch.cuda.get_device_name() if cuda else 'CPU only'}")
    print(f"data: {train.describe()[:70]}...; {args.steps} timed steps of {batch}\n")
    print("| generator | device | precision | batch | params (M) | train steps/s | train images/s | samples/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.generators.split(","):
        count = args.samples // 10 if name == "diffusion" else args.samples
        r = bench_one(name, train, args.steps, batch, args.precision, count)
        print(f"| {r['generator']} | {r['device']} | {r['precision']} | {r['batch']} | {r['params_M']:.2f} | "
              f"{r['steps_per_s']:.2f} | {r['train_images_per_s']:.0f} | {r['samples_per_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
