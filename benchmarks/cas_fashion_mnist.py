"""Classification accuracy score (CAS) on Fashion-MNIST: train a small-cnn only on a generator's samples,
test it on the real test set, and compare with the same classifier trained on the real training set.

Train the generator first with the CLI (the command is in docs/generators.md), then:

    .venv/bin/python benchmarks/cas_fashion_mnist.py --run runs/cas/cgan --per-class 6000 [--threads 2]

    # variants: sampling overrides (--set standing_stats=20) or curation with the library's filters,
    # scored by the real baseline classifier (--filter confidence:tau=0.9): CAS of generator + filter
    .venv/bin/python benchmarks/cas_fashion_mnist.py --run runs/cas/cgan --filter confidence:tau=0.9

Writes `cas[-variant][-seedN].json` into the generator's run folder (and caches the real-data baseline in --baseline,
with its classifier as a classifier run folder next to it, which the filters use).
Also reports the real-trained classifier's accuracy on the synthetic images ("GAN-test": are samples
recognisably of their class?), which separates class fidelity from diversity.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CLASSIFIER = dict(model="small-cnn", recipe="plain", epochs=10, min_steps=1, batch_size=256, augment=["flip"], lr=3e-3,
                  progress=False)


def classifier_config(seed: int) -> "TrainConfig":  # noqa: F821
    from synthaug.training.config import TrainConfig

    return TrainConfig(**CLASSIFIER, seed=seed)


def train_and_test(train: "ImageDataset", test: "ImageDataset", seed: int) -> tuple[float, float, torch.nn.Module]:  # noqa: F821
    """(accuracy on test, seconds, model) of a small-cnn trained on `train`."""
    from synthaug.training.classify import new_classifier
    from synthaug.training.loop import TrainData, evaluate, fit

    cfg = classifier_config(seed)
    model = new_classifier(train, cfg)
    start = time.perf_counter()
    fit(model, TrainData(train), cfg)
    seconds = time.perf_counter() - start
    return evaluate(model, test, cfg)[0]["accuracy"], seconds, model


def real_baseline(path: Path, splits: "DatasetSplits", seed: int) -> tuple[dict, torch.nn.Module]:  # noqa: F821
    """The real-data result (`path`) and its classifier, cached for the same classifier settings and seed. The
    classifier is kept as a classifier run folder beside `path` (`path` without its suffix): what
    `synth make --classifier-run` reads, so the sample filters use the very classifier the CAS compares against."""
    from synthaug.storage.checkpoints import load_checkpoint
    from synthaug.training.classify import MODEL_FILE, new_classifier, save_classifier
    from synthaug.utils import write_json_atomic

    folder = path.with_suffix("")
    if path.exists() and (folder / MODEL_FILE).exists():
        cached = json.loads(path.read_text())
        if cached.get("classifier") == CLASSIFIER and cached.get("seed") == seed:
            model = new_classifier(splits.train, classifier_config(seed))
            load_checkpoint(folder / MODEL_FILE, model)
            return cached, model
    accuracy, seconds, model = train_and_test(splits.train, splits.test, seed)
    result = {"classifier": CLASSIFIER, "seed": seed, "accuracy": accuracy, "train_seconds": seconds}
    folder.mkdir(parents=True, exist_ok=True)
    save_classifier(model, folder, CLASSIFIER["model"], splits.train)  # first: the JSON marks the cache complete
    write_json_atomic(path, result)
    return result, model


def nearest_train_distance(run: str, images: torch.Tensor, labels: torch.Tensor, test: "ImageDataset") -> dict:  # noqa: F821
    """Mean RMS pixel distance from each sample to the nearest image of its class in the generator's own
    training set, next to the same for real test images: samples much closer than test images are copies."""
    from synthaug.data import load_data
    from synthaug.data import generator_data_config

    train = load_data(generator_data_config(run)).train

    def mean_nearest(x: torch.Tensor, y: torch.Tensor) -> float:
        out = []
        for k in range(train.num_classes):
            ref = train.images[train.labels == k].float().div(255).flatten(1)
            xk = x[y == k][:200].float().div(255).flatten(1)
            for chunk in xk.split(100):
                out.append(torch.cdist(chunk, ref).min(1).values / ref.shape[1] ** 0.5)
        return float(torch.cat(out).mean())

    return {"nearest_train_distance": mean_nearest(images, labels),
            "test_nearest_train_distance": mean_nearest(test.images, test.labels), "generator_train_size": len(train)}


def main() -> None:
    from synthaug.data import DataConfig, ImageDataset, load_data
    from synthaug.generators.ensemble import load_generator_ensemble
    from synthaug.utils import write_json_atomic

    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, action="append",
                        help="a `synthaug generator fit` run folder trained on fashion-mnist; repeat it for an ensemble: "
                             "each run gives an equal share of every class's images (results go into the first run)")
    parser.add_argument("--per-class", type=int, default=6000, help="synthetic training images per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and the classifier")
    parser.add_argument("--baseline", help="cache of the real-data result (default runs/cas/real_baseline[-seedN].json)")
    parser.add_argument("--snapshots", action="store_true",
                        help="the ensemble's runs are stages of one training run (copies of its folder taken along the "
                             "way): its training time counts once, not summed")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--set", action="append", help="sampling override, e.g. guidance_scale=1 or noise_scale=1.5 (repeatable)")
    parser.add_argument("--filter", action="append", default=[],
                        help="curate the samples as `synthaug synth make --filter` does (e.g. confidence:tau=0.9; "
                             "repeatable): the filter classifier is trained on the real training set, so this CAS "
                             "is of generator + filter, not of the generator alone")
    parser.add_argument("--oversample", type=float, default=1.5, help="candidates per missing image when filtering")
    parser.add_argument("--skip-cas", action="store_true",
                        help="only the real classifier's accuracy on the samples and their diversity (seconds, not minutes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.baseline is None:  # one cache per seed, so another seed never overwrites seed 0's
        args.baseline = "runs/cas/real_baseline" + (f"-seed{args.seed}" if args.seed else "") + ".json"
    splits = load_data(DataConfig("fashion-mnist"))
    real, real_model = real_baseline(Path(args.baseline), splits, args.seed)
    print(f"real train -> real test: {real['accuracy']:.4f} ({real['train_seconds']:.0f} s)", flush=True)

    gen = load_generator_ensemble(args.run)  # several runs: their ensemble, each giving an equal share of every class
    from synthaug.cli.generator import parse_sets

    sampling = parse_sets(args.set)[0]
    if sampling:  # every member of an ensemble alike
        gen.override(sampling)
    start = time.perf_counter()
    manifest = None
    if args.filter:  # the library's curation path: sample, score, keep, store (then read back, hash-checked)
        from synthaug.synthetic.make import SynthConfig, sample_synthetic_set
        from synthaug.data import read_synthetic
        from synthaug.utils import config_hash

        cfg = SynthConfig(generator_run=args.run[0], ensemble=args.run[1:], sampling=sampling, per_class=args.per_class,
                          filters=args.filter, classifier_run=str(Path(args.baseline).with_suffix("")),
                          oversample=args.oversample, seed=args.seed, progress=False)
        key = config_hash([args.filter, args.oversample, args.per_class, args.seed, args.run[1:], sampling])
        out = Path(args.run[0]) / f"cas_synthetic-{key}"
        manifest = sample_synthetic_set(cfg, out, real=splits.train)
        stored = read_synthetic(out)
        images, labels = stored.images, stored.labels
    else:
        labels = torch.arange(gen.num_classes).repeat_interleave(args.per_class)
        images = gen.sample(labels, seed=args.seed)
    sample_seconds = time.perf_counter() - start
    synthetic = ImageDataset(images, labels, gen.class_names, name=f"{gen.name} samples")
    print(f"sampled {len(labels)} images in {sample_seconds:.0f} s", flush=True)

    from synthaug.training.loop import evaluate

    from synthaug.generators.health import class_diversity

    fidelity = evaluate(real_model, synthetic, classifier_config(args.seed))[0]["accuracy"]
    rank = torch.empty_like(labels)  # position of each image within its class
    for k in range(gen.num_classes):
        rank[labels == k] = torch.arange(int((labels == k).sum()))
    first = rank < 200  # 200 per class is plenty for a mean distance (an ensemble deals them out to every member)
    diversity = class_diversity(images[first], labels[first], gen.num_classes)
    real_first = torch.cat([torch.nonzero(splits.train.labels == k).flatten()[:200] for k in range(gen.num_classes)])
    real_diversity = class_diversity(splits.train.images[real_first], splits.train.labels[real_first], gen.num_classes)
    memorisation = nearest_train_distance(args.run[0], images[first], labels[first], splits.test)
    cas, seconds = (None, None) if args.skip_cas else train_and_test(synthetic, splits.test, args.seed)[:2]
    summaries = [json.loads((Path(run) / "summary.json").read_text()) for run in args.run]
    # an ensemble's training time: each training run counted once, at its longest member (snapshots written by
    # --snapshot-every name their run; --snapshots says all the runs given are stages of one training run)
    trajectory: dict[str, float] = {}
    for run, summary in zip(args.run, summaries):
        key = "all" if args.snapshots else str(Path(summary.get("snapshot_of", run)).resolve())
        trajectory[key] = max(trajectory.get(key, 0.0), summary["train_seconds"])
    result = {"generator": gen.name, "run": args.run[0] if len(args.run) == 1 else args.run, "per_class": args.per_class,
              "seed": args.seed, "generator_steps": summaries[0]["steps"] if len(args.run) == 1 else [s["steps"] for s in summaries],
              "generator_train_seconds": round(sum(trajectory.values()), 1),
              "sample_seconds": round(sample_seconds, 1), "cas": cas, "real_accuracy": real["accuracy"],
              "gap_points": None if cas is None else round(100 * (real["accuracy"] - cas), 2),
              "real_classifier_on_synthetic": fidelity,
              "diversity_mean": sum(diversity) / len(diversity), "real_diversity_mean": sum(real_diversity) / len(real_diversity),
              "diversity": [round(d, 3) for d in diversity], **memorisation, "classifier": CLASSIFIER,
              "classifier_train_seconds": seconds and round(seconds, 1), "sampling_overrides": args.set or [],
              "filters": args.filter, "candidates_per_class": manifest and manifest.get("generated_per_class"),
              "kept_per_class": manifest and manifest.get("kept_per_class")}
    name = "fidelity" if args.skip_cas else "cas"
    if len(args.run) > 1:  # e.g. cas-ensemble-cgan_d2_20k.json in the first run: the other members by folder name
        name += "-ensemble-" + "-".join(Path(run).name for run in args.run[1:])
    for tag in [*args.filter, *(args.set or [])]:  # one file per variant, e.g. cas-confidence_tau0.9.json
        name += "-" + tag.replace(":", "_").replace("=", "").replace(",", "_")
    if args.seed != 0:  # other seeds sit beside seed 0's file, e.g. cas-seed1.json
        name += f"-seed{args.seed}"
    write_json_atomic(Path(args.run[0]) / f"{name}.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
