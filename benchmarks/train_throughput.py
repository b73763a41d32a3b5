"""Training throughput: synthaug's loop vs the tutorial way (PIL Dataset + DataLoader + transforms).

Both train the same classifier on the same images for the same number of steps, in one process, one
after the other, and we print images/s of each and the ratio. Run:

    .venv/bin/python benchmarks/train_throughput.py [--dataset fashion-mnist] [--steps 150] [--workers 0]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_loop(train, model_name: str, steps: int, batch_size: int, workers: int, seed: int,
                  device: str = "cpu") -> float:
    """The DataLoader recipe most tutorials show: PIL images, transforms.Compose, shuffle, Adam (fp32); on a GPU
    the batches are copied to it from pinned memory, as tutorials do."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from synthaug.classifiers import build_classifier

    class PILDataset(Dataset):
        def __init__(self, images, labels, transform):
            self.images = [Image.fromarray(im[0].numpy(), mode="L") for im in images]
            self.labels = labels.tolist()
            self.transform = transform

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.transform(self.images[i]), self.labels[i]

    transform = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.RandomCrop(train.image_size[0], padding=2),
                                    transforms.ToTensor()])
    dev = torch.device(device)
    loader = DataLoader(PILDataset(train.images, train.labels, transform), batch_size=batch_size, shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0, pin_memory=dev.type == "cuda")
    torch.manual_seed(seed)
    model = build_classifier(model_name, 1, train.num_classes, train.image_size[0]).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    done, start = 0, None
    while done < steps:
        for x, y in loader:
            if done == 5:
                sync(dev)
                start = time.perf_counter()  # skip warm-up steps, as for ours
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
    sync(dev)
    return (steps - 5) * batch_size / (time.perf_counter() - start)


def plain_loop(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int,
               seed: int, precision: str = "fp32", device: str = "cpu", warmup: int = 5) -> float:
    """The shortest fast loop a PyTorch user writes: uint8 images and labels already on the device, random batches,
    autocast when asked, AdamW, no augmentation. `model` may be DistributedDataParallel-wrapped (each process then
    draws its own batches of `batch_size`). Images/s of this process over `steps` steps after `warmup` steps."""
    dev = torch.device(device)
    images, labels = images.to(dev), labels.to(dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    dtype = torch.bfloat16 if precision == "bf16" else None
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            sync(dev)
            start = time.perf_counter()
        idx = torch.randint(0, len(labels), (batch_size,), device=dev, generator=g)
        x = images[idx].float().div_(255.0)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(dev)
    return steps * batch_size / (time.perf_counter() - start)


def synthaug_fit(train, model_name: str, steps: int, batch_size: int, seed: int, precision: str = "fp32",
                 augment: list[str] | None = None, device: str = "auto",
                 warmup: int = 5) -> tuple[dict, torch.nn.Module]:
    """synthaug's fit() for `steps` - `warmup` steps, after a separate `warmup`-step fit; its summary and the model
    it trained. augment None: flip + 2-pixel crop, [] none."""
    from synthaug.training.classify import new_classifier
    from synthaug.training.config import TrainConfig
    from synthaug.training.loop import TrainData, fit

    augment = ["flip", "crop"] if augment is None else augment
    warm = TrainConfig(model=model_name, recipe="plain", steps=warmup, batch_size=batch_size, progress=False, seed=seed,
                       augment=augment, precision=precision, device=device)
    fit(new_classifier(train, warm), TrainData(train), warm)
    cfg = TrainConfig(model=model_name, recipe="plain", steps=steps - warmup, batch_size=batch_size, progress=False, seed=seed,
                      augment=augment, crop_padding=2, precision=precision, device=device)
    model = new_classifier(train, cfg)
    return fit(model, TrainData(train), cfg), model  # fit's clock stops after a synchronising loss check


def synthaug_loop(train, model_name: str, steps: int, batch_size: int, seed: int, precision: str = "fp32",
                  augment: list[str] | None = None, device: str = "auto", warmup: int = 5) -> float:
    """Images/s of synthaug_fit."""
    summary, _ = synthaug_fit(train, model_name, steps, batch_size, seed, precision, augment, device, warmup)
    return summary["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the tutorial loop")
    args = parser.parse_args()
    from synthaug.data import DataConfig, DatasetError, load_data

    try:
        train = load_data(DataConfig(args.dataset)).train
    except DatasetError as exc:
        print(f"{exc}\nfalling back to digits upscaled to 28x28")
        train = load_data(DataConfig("digits", image_size=28)).train
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"data: {train.describe()[:80]}...; model {args.model}; {args.steps} steps of {args.batch_size}")
    ours = synthaug_loop(train, args.model, args.steps, args.batch_size, 0)
    ours_bf16 = synthaug_loop(train, args.model, args.steps, args.batch_size, 0, precision="bf16")
    theirs = tutorial_loop(train, args.model, args.steps, args.batch_size, args.workers, 0)
    print(f"synthaug loop, fp32 default (tensors in memory, batched augmentation, channels_last): {ours:8.0f} images/s")
    print(f"synthaug loop, --precision bf16 (opt-in on CPU):                                  {ours_bf16:8.0f} images/s")
    print(f"tutorial loop, fp32 (PIL Dataset + DataLoader, {args.workers} workers, transforms):          {theirs:8.0f} images/s")
    print(f"ratio fp32: {ours / theirs:.2f}x   ratio bf16: {ours_bf16 / theirs:.2f}x")


if __name__ == "__main__":
    main()
