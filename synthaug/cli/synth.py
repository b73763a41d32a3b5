"""synthaug synth make | merge | evaluate: curated synthetic datasets and how good they are."""

from __future__ import annotations

import argparse
import json

from synthaug.cli.generator import parse_sets
from synthaug.config import ConfigError, from_dict
from synthaug.synthetic import FILTERS, SynthConfig, sample_synthetic_set
from synthaug.synthetic.evaluate import EvaluateConfig, evaluate_synthetic
from synthaug.synthetic.shards import CHUNK_PER_CLASS, make_shard, merge_shards, parse_shard


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="synth_command", metavar="SUBCOMMAND", required=True)
    make = sub.add_parser("make", help="sample a trained generator, filter, store with a manifest")
    make.add_argument("--generator-run", required=True, help="folder written by `synthaug generator fit`")
    make.add_argument("--ensemble", action="append", default=[], metavar="RUN",
                      help="another generator run folder (same classes) sampled together with --generator-run, an equal "
                           "share of every class each (repeatable); e.g. its snapshots/step_N from --snapshot-every")
    make.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="sampling setting for every generator, e.g. --set noise_scale=1.5 (repeatable)")
    make.add_argument("--per-class", type=int, help="images per class to keep after filtering (required unless --per-image)")
    make.add_argument("--mode", choices=["auto", "labels", "variations"], default="auto",
                      help="labels: sample from class labels; variations: vary each real source image (sd-img2img, "
                           "style-transfer; kept in their run folder); auto (default): variations for generators that need sources")
    make.add_argument("--per-image", type=int, metavar="M",
                      help="variations mode: M images per source image (per-class targets become M x the class's sources)")
    make.add_argument("--strength", metavar="S[,S...]",
                      help="variations mode: noise strengths drawn from per image, e.g. 0.25,0.5,0.75,1.0 "
                           "(= --set strengths=[...]; for generators with a `strengths` setting)")
    make.add_argument("--filter", action="append", default=[], metavar="SPEC",
                      help=f"filter, repeatable: {', '.join(FILTERS.available())} with options, e.g. "
                           "confidence:tau=0.8, confidence:top_k=1, dedup:ratio=0.1, memorisation:ratio=0.5")
    make.add_argument("--classifier-run", help="classifier run for the filters (default: train one on the generator's data)")
    make.add_argument("--oversample", type=float, default=1.5, help="candidates per round / images still missing")
    make.add_argument("--classes", help="comma-separated classes to generate (default all)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--batch-size", type=int, default=256)
    make.add_argument("--device", default="cpu")
    make.add_argument("--png", action="store_true", help="also export png/<class>/*.png")
    make.add_argument("--out", required=True, help="folder of the synthetic dataset")
    make.add_argument("--shard", metavar="INDEX/COUNT",
                      help="make only shard INDEX of COUNT (from 0), with its own seeds, e.g. on several machines; "
                           "`synth merge` joins them into the set --shard 0/1 makes in one go")
    make.add_argument("--chunk-per-class", type=int, metavar="N",
                      help="with --shard: images per class in the chunks that shards share out (default 100)")
    make.set_defaults(_synth=run_make)
    merge = sub.add_parser("merge", help="join the shards of `synth make --shard` into one synthetic dataset")
    merge.add_argument("shards", nargs="+", metavar="SHARD", help="the shard folders (all of them, any order)")
    merge.add_argument("--out", required=True, help="folder of the merged synthetic dataset")
    merge.set_defaults(_synth=run_merge)
    evaluate = sub.add_parser("evaluate", help="FID, KID, IS, precision/recall, MMD, CAS, memorisation, per class")
    evaluate.add_argument("--synthetic", required=True, help="synthetic dataset folder (`synth make --out`)")
    evaluate.add_argument("--dataset", help="real dataset to compare with (default: the generator's)")
    evaluate.add_argument("--data-root")
    evaluate.add_argument("--features", default="classifier", help="feature extractor: classifier or inception")
    evaluate.add_argument("--classifier-run", help="classifier giving the features (default: trained on the real data, cached)")
    evaluate.add_argument("--cas-steps", type=int, default=None, help="steps of the train-on-synthetic classifier (CAS)")
    evaluate.add_argument("--max-images", type=int, default=5000, help="images per set for the feature metrics")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", required=True, help="folder for metrics.json and plots")
    evaluate.set_defaults(_synth=run_evaluate)


def run(args: argparse.Namespace) -> int:
    return args._synth(args)


def run_make(args: argparse.Namespace) -> int:
    if args.per_class is None and args.per_image is None:
        raise ConfigError("synth make needs --per-class N (images per class) or, in variations mode, --per-image M")
    sampling = parse_sets(args.set)[0]
    if args.strength:
        try:
            sampling["strengths"] = [float(v) for v in args.strength.split(",") if v.strip()]
        except ValueError as exc:
            raise ConfigError(f"--strength expects comma-separated numbers in (0, 1], got {args.strength!r}") from exc
    extra = {"per_class": args.per_class} if args.per_class is not None else {}
    cfg = from_dict(SynthConfig, dict(
        generator_run=args.generator_run, ensemble=args.ensemble, sampling=sampling, mode=args.mode, per_image=args.per_image,
        **extra, filters=args.filter, classifier_run=args.classifier_run, oversample=args.oversample,
        classes=[c.strip() for c in args.classes.split(",")] if args.classes else None, batch_size=args.batch_size,
        export_png=args.png, device=args.device, seed=args.seed))
    if args.shard or args.chunk_per_class:
        if not args.shard:
            raise ConfigError("--chunk-per-class sizes the chunks of a sharded set: add --shard INDEX/COUNT")
        manifest = make_shard(cfg, parse_shard(args.shard), args.out, args.chunk_per_class or CHUNK_PER_CLASS)
    else:
        manifest = sample_synthetic_set(cfg, args.out)
    print(json.dumps({"kept_per_class": manifest["kept_per_class"], "keep_rate_per_class": manifest["keep_rate_per_class"]},
                     indent=1))
    if manifest.get("leakage_warning"):
        print(f"WARNING: {manifest['leakage_warning']}")
    print(f"synthetic dataset: {args.out}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    manifest = merge_shards(args.shards, args.out)
    print(f"{manifest['total']} images ({', '.join(f'{k}: {v}' for k, v in manifest['kept_per_class'].items())}) "
          f"from {len(args.shards)} shards: {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    cfg = from_dict(EvaluateConfig, dict(
        synthetic=args.synthetic, dataset=args.dataset, data_root=args.data_root, features=args.features,
        classifier_run=args.classifier_run, cas_steps=args.cas_steps, max_images=args.max_images, seed=args.seed,
        device=args.device))
    metrics = evaluate_synthetic(cfg, args.out)
    keys = ["fid", "kid", "inception_score", "precision", "recall", "density", "coverage", "mmd", "mmd_p_value", "cas",
            "real_accuracy", "memorisation_ratio"]
    print(json.dumps({k: metrics.get(k) for k in keys}, indent=1))
    print(f"metrics and plots: {args.out}")
    return 0
