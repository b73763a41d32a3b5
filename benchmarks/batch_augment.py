"""Strong augmentation of an unlabelled batch: batched (synthaug.training.batch_augment) vs torchvision image by image.

FixMatch augments mu x batch = 448 unlabelled images strongly at every step. torchvision's RandAugment /
TrivialAugmentWide draw one op per call, so a per-image op needs a Python loop (what training.augment does for the
strong recipe); BatchAutoAugment draws per image and runs each op once over its group. Both run here on the same
uint8 batch, in one process, and the ratio is printed. Run:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batch_augment.py --images 448 --size 28 --repeats 20
"""

from __future__ import annotations

import argparse
import time

import torch


def images_per_second(fn, images: torch.Tensor, repeats: int) -> float:
    fn(images)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn(images)
    return repeats * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=448, help="images per batch (FixMatch: 7 x 64)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from torchvision.transforms import v2

    from synthaug.training.batch_augment import RANDAUGMENT, TRIVIALAUGMENT_WIDE, BatchAutoAugment

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, args.channels, args.size, args.size), dtype=torch.uint8, generator=g)
    rows = []
    for name, ours, theirs in (
        ("RandAugment (2 ops, magnitude 9)", BatchAutoAugment(RANDAUGMENT, 2, 9), v2.RandAugment(num_ops=2, magnitude=9)),
        ("TrivialAugmentWide", BatchAutoAugment(TRIVIALAUGMENT_WIDE, 1, None), v2.TrivialAugmentWide()),
    ):
        batched = images_per_second(lambda x: ours(x, g), images, args.repeats)
        looped = images_per_second(lambda x: torch.stack([theirs(img) for img in x]), images, args.repeats)
        rows.append((name, batched, looped))
    print(f"{args.images} images of {args.channels}x{args.size}x{args.size}, {args.threads} thread(s)")
    print(f"{'augmentation':<34} {'batched img/s':>14} {'torchvision loop img/s':>23} {'ratio':>6}")
    for name, batched, looped in rows:
        print(f"{name:<34} {batched:>14,.0f} {looped:>23,.0f} {batched / looped:>5.1f}x")


if __name__ == "__main__":
    main()
