"""Experiment kinds (one registry): each runs its arms over the seeds and records tidy rows.

Arm names are what the report prints; the report groups and plots by the arms' structured fields
(experiments.arms), never by their names. Every kind has a baseline arm so that the statistics can pair
each arm with it seed by seed (see BASELINES).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from synthaug.classifiers import load_classifier
from synthaug.data import DatasetSplits, ImageDataset
from synthaug.data.base import concat
from synthaug.experiments import steps
from synthaug.experiments.arms import Arm
from synthaug.experiments.config import optimizer_generator
from synthaug.experiments.context import Experiment
from synthaug.experiments.evaluate import evaluate_run
from synthaug.experiments.quality import generator_loss_stats, record_quality
from synthaug.generators import GENERATORS
from synthaug.generators.sources import varies_sources
from synthaug.registry import Registry
from synthaug.synthetic.pseudo_label import pseudo_label
from synthaug.training.config import fit_to_data

KINDS: Registry[Callable[[Experiment], None]] = Registry("experiment kind")
BASELINE = "real + classical augmentation (baseline)"
PLAIN = "real, no augmentation"
BASELINES = {"compare": BASELINE, "p-real": BASELINE, "imbalance": BASELINE, "transfer": "train real / test real",
             "unlabelled": BASELINE}
OVERSAMPLING = "real + random oversampling"
PSEUDO = "real + pseudo-labelled pool"
REAL_ONLY = {PLAIN, OVERSAMPLING, PSEUDO}  # arms without synthetic images: "worse", never "synthetic data hurts"
VIEW_KINDS = {"compare", "data-efficiency", "imbalance", "unlabelled"}  # kinds run once per budget view (compare_at); the rest
# (p-real sweeps, transfer, optimisers) run in the headline view only
PER_GENERATOR = {"compare", "p-real", "transfer", "data-efficiency", "imbalance"}  # kinds whose arms of one generator
# need nothing of the other generators' (they loop over exp.generators): an executor may run them apart. Not unlabelled:
# its consistency-training arms take synthetic sets of any generator (unlabelled.ssl_synthetic)


def _strategy_arm(exp: Experiment, name: str) -> Arm:
    strategy = exp.cfg.mix.strategy
    return Arm(f"real + classical + {name} ({strategy})", "generators", generator=name, mixing=strategy,
               p_real=exp.cfg.mix.p_real if strategy == "p_real" else None)


def _baseline(group: str = "classical") -> Arm:
    return Arm(BASELINE, group)  # type: ignore[arg-type]


@KINDS.register("compare")
def compare(exp: Experiment) -> None:
    """Real without augmentation, the strong classical baseline, and real + synthetic per generator."""
    for seed in exp.seeds:
        splits = exp.splits(seed)
        _, plain = steps.classifier_step(exp.cache, "plain", splits, exp.plain_cfg(seed, splits))
        exp.record("compare", Arm(PLAIN, "classical", mixing="none"), seed, plain)
        _, base = exp.train_baseline(seed, splits)
        exp.record("compare", _baseline(), seed, base)
        exp.keep_confusion("compare", _baseline(), base)
        for spec in exp.generators:
            gen_dir = exp.generator(spec, seed, splits)
            synthetic = exp.synthetic(spec, seed, splits, gen_dir)
            arm = _strategy_arm(exp, spec.name)
            _, metrics = exp.train_with_synthetic(seed, splits, synthetic, f"{spec.name}-{exp.cfg.mix.strategy}")
            exp.record("compare", arm, seed, metrics)
            exp.keep_confusion("compare", arm, metrics)
            if exp.primary_view:
                record_quality(exp, Arm(spec.name, "quality", spec.name), seed, splits, synthetic)


@KINDS.register("p-real")
def p_real(exp: Experiment) -> None:
    """Accuracy against the share of real images per batch (p_real=1: the baseline; 0: synthetic only)."""
    chosen = exp.cfg.p_real_generators or [g.name for g in exp.cfg.generators]
    for seed in exp.seeds:
        splits = exp.splits(seed)
        _, base = exp.train_baseline(seed, splits)
        exp.record("p-real", _baseline(), seed, base)
        for spec in (g for g in exp.generators if g.name in chosen):
            gen_dir = exp.generator(spec, seed, splits)
            synthetic = exp.synthetic(spec, seed, splits, gen_dir)
            for p in exp.cfg.p_real_values:
                if p == 1.0:
                    metrics = base  # all-real batches are exactly the baseline arm
                else:
                    _, metrics = exp.train_with_synthetic(seed, splits, synthetic, f"{spec.name}-p{p:g}", strategy="p_real", p_real=p)
                exp.record("p-real", Arm(f"{spec.name} p_real={p:g}", "p_real", generator=spec.name, mixing="p_real",
                                         p_real=p), seed, metrics)


@KINDS.register("transfer")
def transfer(exp: Experiment) -> None:
    """Train on synthetic / test on real (TSTR), the reverse (TRTS), and mixed, with confusion matrices."""
    for seed in exp.seeds:
        splits = exp.splits(seed)
        base_dir, base = exp.train_baseline(seed, splits)
        real = Arm("train real / test real", "transfer")
        exp.record("transfer", real, seed, base)
        exp.keep_confusion("transfer", real, base)
        for spec in exp.generators:
            gen_dir = exp.generator(spec, seed, splits)
            synthetic = exp.synthetic(spec, seed, splits, gen_dir)
            # A second synthetic set, sampled with another seed, serves as the synthetic *test* set.
            held_out = exp.synthetic(spec, seed, splits, gen_dir, sample_seed=10_000 + seed, label=f"{spec.name}-test")
            name = spec.name
            arms = {Arm(f"train real / test {name}", "transfer", generator=name): (base_dir, held_out)}
            syn_dir, tstr = exp.train_with_synthetic(seed, splits, synthetic, f"{name}-synthetic-only", strategy="synthetic-only")
            arms[Arm(f"train {name} / test real (TSTR)", "transfer", name, "synthetic-only", 0.0)] = (syn_dir, None)
            arms[Arm(f"train {name} / test {name}", "transfer", name, "synthetic-only", 0.0)] = (syn_dir, held_out)
            mix_dir, _ = exp.train_with_synthetic(seed, splits, synthetic, f"{name}-add", strategy="add")
            arms[Arm(f"train real+{name} / test real", "transfer", name, "add")] = (mix_dir, None)
            arms[Arm(f"train real+{name} / test {name}", "transfer", name, "add")] = (mix_dir, held_out)
            for arm, (run_dir, test) in arms.items():
                metrics = evaluate_run(run_dir, test if test is not None else splits.test)
                exp.record("transfer", arm, seed, metrics)
                exp.keep_confusion("transfer", arm, metrics)


@KINDS.register("data-efficiency")
def data_efficiency(exp: Experiment) -> None:
    """Baseline and augmented accuracy over real-label budgets (images per class)."""
    for budget in exp.cfg.budgets:
        for seed in exp.seeds:
            splits = exp.splits(seed, per_class=budget, fraction=None, class_counts=None)
            _, base = exp.train_baseline(seed, splits, label=f"baseline-{budget}")
            exp.record("data-efficiency", Arm(f"baseline@{budget}", "budget", budget=budget), seed, base)
            for spec in exp.generators:
                gen_dir = exp.generator(spec, seed, splits, data_overrides={"per_class": budget, "fraction": None,
                                                                            "class_counts": None}, label=f"{spec.name}-{budget}")
                synthetic = exp.synthetic(spec, seed, splits, gen_dir, label=f"{spec.name}-{budget}")
                _, metrics = exp.train_with_synthetic(seed, splits, synthetic, f"{spec.name}-{budget}")
                exp.record("data-efficiency", Arm(f"{spec.name}@{budget}", "budget", spec.name, exp.cfg.mix.strategy,
                                                  budget=budget), seed, metrics)


@KINDS.register("optimizers")
def optimizers(exp: Experiment) -> None:
    """The GAN trained with each optimiser: CAS, FID / KID / precision-recall, loss stability, time."""
    spec = optimizer_generator(exp.cfg)  # checked at config: there is one
    for seed in exp.seeds:
        splits = exp.splits(seed)
        for opt in exp.cfg.optimizers:
            label = f"{spec.name}-{opt}"
            arm = Arm(label, "quality", generator=spec.name, mixing="synthetic-only", p_real=0.0)
            gen_dir = exp.generator(spec, seed, splits, gen_overrides={"optimizer": opt}, label=label)
            synthetic = exp.synthetic(spec, seed, splits, gen_dir, label=label)
            _, tstr = exp.train_with_synthetic(seed, splits, synthetic, f"{label}-synthetic-only", strategy="synthetic-only")
            exp.add_row("optimizers", arm, seed, "cas", tstr["accuracy"])
            record_quality(exp, arm, seed, splits, synthetic, experiment="optimizers")
            for metric, value in generator_loss_stats(gen_dir).items():
                exp.add_row("optimizers", arm, seed, metric, value)
            info = exp.artefacts["generators"][label][str(seed)]
            exp.add_row("optimizers", arm, seed, "train_seconds", info["seconds"])


def _minority(train: ImageDataset, names: list[str] | None) -> list[str]:
    if names:
        return list(names)
    counts = train.class_counts()
    return [n for n, c in zip(train.class_names, counts) if c < 0.5 * max(counts)]


@KINDS.register("imbalance")
def imbalance(exp: Experiment) -> None:
    """Rebalancing minority classes with synthetic images vs random oversampling of the real ones."""
    for seed in exp.seeds:
        splits = exp.splits(seed)
        counts = splits.train.class_counts()
        minority = _minority(splits.train, exp.data.minority_classes)
        top = max(counts)
        missing = {name: top - n for name, n in zip(splits.train.class_names, counts)}
        arms = {_baseline(): exp.train_baseline(seed, splits)[1]}
        if not any(missing.values()):
            raise ValueError("the imbalance kind needs an imbalanced training set: set data.imbalance_ratio or data.class_counts")
        arms[Arm(OVERSAMPLING, "classical", mixing="oversample")] = exp.train_with_synthetic(seed, splits, _oversample(splits.train, missing, seed),
                                                                      "oversampling", strategy="add")[1]
        for spec in exp.generators:
            gen_dir = exp.generator(spec, seed, splits)
            synthetic = exp.synthetic(spec, seed, splits, gen_dir, counts={k: v for k, v in missing.items() if v > 0},
                                      label=f"{spec.name}-rebalance")
            arms[Arm(f"real + {spec.name} rebalancing", "generators", spec.name, "add")] = exp.train_with_synthetic(seed, splits, synthetic, f"{spec.name}-rebalance",
                                                                               strategy="add")[1]
        for arm, metrics in arms.items():
            exp.record("imbalance", arm, seed, metrics)
            exp.keep_confusion("imbalance", arm, metrics)
            recalls = [metrics["per_class"][n]["recall"] for n in minority]
            if recalls:
                exp.add_row("imbalance", arm, seed, "minority_recall", sum(recalls) / len(recalls))


def _oversample(train: ImageDataset, missing: dict[str, int], seed: int) -> ImageDataset:
    """Copies of real images (drawn with replacement) that bring every class up to the largest."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k, name in enumerate(train.class_names):
        idx = (train.labels == k).nonzero().squeeze(1)
        if missing[name] > 0:
            picks.append(idx[torch.randint(len(idx), (missing[name],), generator=g)])
    ds = train.subset(torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long), name="oversampled")
    ds.provenance = {**ds.provenance, "path": f"oversampled-{seed}-{sum(missing.values())}"}
    return ds


@KINDS.register("unlabelled")
def unlabelled(exp: Experiment) -> None:
    """An unlabelled pool: variations of each labelled image from diffusion models (trained with and without the
    pool), class-conditional samples, pseudo-labelling of the same pool (the baseline a generator must beat),
    consistency training on the pool (FixMatch family, the strongest alternative), synthetic sets added to it, and
    the DPT route (a generator fitted on the consistency-trained model's pseudo-labels of the pool)."""
    spec_u = exp.cfg.unlabelled
    for seed in exp.seeds:
        splits = exp.splits(seed)
        base_dir, base = exp.train_baseline(seed, splits)
        _record_with_compute(exp, _baseline(), seed, base)
        exp.keep_confusion("unlabelled", _baseline(), base)
        tta_flip = bool(fit_to_data(exp.cfg.classifier, splits.train).tta_flip)
        # only the teacher's predictions label the pool
        pseudo = pseudo_label(load_classifier(base_dir)[0], splits.unlabelled, splits.train.class_names,
                              spec_u.pseudo_label_tau, spec_u.pseudo_label_max, tta_flip=tta_flip)
        exp.artefacts.setdefault("pseudo_label", {})[str(seed)] = {"kept": len(pseudo), "pool": len(splits.unlabelled),
                                                                   "tau": spec_u.pseudo_label_tau}
        if len(pseudo):
            _, metrics = exp.train_with_synthetic(seed, splits, pseudo, "pseudo-label", strategy="p_real", p_real=spec_u.p_real)
            _record_with_compute(exp, Arm(PSEUDO, "pool", mixing="pseudo-label", p_real=spec_u.p_real), seed, metrics)
        ssl_dirs = {}
        for method in spec_u.ssl:
            ssl_dirs[method], metrics = _train_ssl(exp, seed, splits, method)
            arm = Arm(f"{method} on the pool ({spec_u.ssl_steps} steps)", "pool", mixing=method)
            _record_with_compute(exp, arm, seed, metrics, ssl=True)
            exp.keep_confusion("unlabelled", arm, metrics)
        made: dict[str, tuple[str, ImageDataset]] = {}  # label -> (generator, synthetic set), for unlabelled.ssl_synthetic
        for spec in exp.generators:
            if spec.pseudo_labels:  # the DPT route, below: it needs the consistency-trained model first
                continue
            gen_dir = exp.generator(spec, seed, splits)
            origin = "pool + labelled" if spec.unlabelled else "labelled only"
            if varies_sources(GENERATORS.resolve(spec.generator)[0]):  # its `strengths` setting: checked at config
                for m in spec_u.per_image:
                    for t in spec_u.strengths:
                        label = f"{spec.name}-var-t{t:g}-m{m}"
                        synthetic = exp.synthetic(spec, seed, splits, gen_dir, label=label,
                                                  variations={"per_image": m, "strengths": [t]})
                        made[label] = (spec.name, synthetic)
                        arm = Arm(f"{spec.name} ({origin}) variations t={t:g} M={m}", "pool", spec.name, "p_real",
                                  spec_u.p_real, strength=t, per_image=m)
                        _, metrics = exp.train_with_synthetic(seed, splits, synthetic, label, strategy="p_real",
                                                              p_real=spec_u.p_real)
                        _record_with_compute(exp, arm, seed, metrics)
                        if exp.primary_view and m == spec_u.per_image[0]:
                            record_quality(exp, Arm(label, "quality", spec.name, strength=t, per_image=m), seed, splits,
                                           synthetic)
            if spec.unlabelled and spec_u.class_samples:
                label = f"{spec.name}-samples"
                synthetic = exp.synthetic(spec, seed, splits, gen_dir, label=label)
                made[label] = (spec.name, synthetic)
                _, metrics = exp.train_with_synthetic(seed, splits, synthetic, label, strategy="p_real", p_real=spec_u.p_real)
                _record_with_compute(exp, Arm(f"{spec.name} ({origin}) class samples", "pool", spec.name, "p_real",
                                              spec_u.p_real), seed, metrics)
                if exp.primary_view:
                    record_quality(exp, Arm(label, "quality", spec.name), seed, splits, synthetic)
        teacher = ssl_dirs.get(spec_u.ssl[0]) if spec_u.ssl else None
        dpt = [g for g in exp.generators if g.pseudo_labels]
        if dpt:  # one labelling of the pool by this seed's consistency-trained model, for every DPT generator
            pool_labelled = pseudo_label(load_classifier(teacher)[0], splits.unlabelled, splits.train.class_names,
                                         spec_u.dpt_tau, tta_flip=tta_flip)
            exp.artefacts.setdefault("dpt_pseudo_label", {})[str(seed)] = {
                "kept": len(pool_labelled), "pool": len(splits.unlabelled), "tau": spec_u.dpt_tau, "teacher": str(teacher)}
            dpt_splits = DatasetSplits(concat(splits.train, pool_labelled, name="labelled+pseudo-labelled pool"),
                                       splits.test, splits.val)
        for spec in dpt:
            gen_dir = exp.generator(spec, seed, dpt_splits, label=f"{spec.name}-tau{spec_u.dpt_tau:g}-{teacher.name}")
            label = f"{spec.name}-samples"
            synthetic = exp.synthetic(spec, seed, dpt_splits, gen_dir, label=label)
            made[label] = (spec.name, synthetic)
            _, metrics = exp.train_with_synthetic(seed, splits, synthetic, label, strategy="p_real", p_real=spec_u.p_real)
            _record_with_compute(exp, Arm(f"{spec.name} (DPT: pool pseudo-labelled by {spec_u.ssl[0]}) class samples",
                                          "pool", spec.name, "p_real", spec_u.p_real), seed, metrics)
            if exp.primary_view:
                record_quality(exp, Arm(label, "quality", spec.name), seed, splits, synthetic)
        for label in spec_u.ssl_synthetic:
            if label not in made:
                raise ValueError(f"unlabelled.ssl_synthetic: no synthetic set {label!r} in this experiment; its sets are "
                                 f"{', '.join(made) or 'none'}")
            generator, synthetic = made[label]
            for method in spec_u.ssl:
                _, metrics = _train_ssl(exp, seed, splits, method, synthetic, label)
                _record_with_compute(exp, Arm(f"{method} + {label} ({spec_u.ssl_steps} steps)", "pool", generator,
                                              f"{method}+p_real", spec_u.p_real), seed, metrics, ssl=True)


def _train_ssl(exp: Experiment, seed: int, splits: DatasetSplits, method: str, synthetic: ImageDataset | None = None,
               synthetic_label: str | None = None) -> tuple[Path, dict]:
    """One consistency-training run on the pool at unlabelled.ssl_steps (synthetic images, when given, join the
    labelled stream at p_real). Its own fixed length: the budget views size supervised arms only."""
    spec_u = exp.cfg.unlabelled
    cfg = replace(exp.cfg.classifier, steps=spec_u.ssl_steps, ssl=method, ssl_ratio=spec_u.ssl_ratio,
                  ssl_threshold=spec_u.ssl_threshold, seed=seed, device=exp.cfg.device, progress=False)
    label = method if synthetic is None else f"{method}-{synthetic_label}"
    p_real = None if synthetic is None else spec_u.p_real
    return steps.classifier_step(exp.cache, label, splits, cfg, synthetic=synthetic, p_real=p_real,
                                 key_extra={"unlabelled": len(splits.unlabelled)})


def _record_with_compute(exp: Experiment, arm: Arm, seed: int, metrics: dict, ssl: bool = False) -> None:
    """The arm's metrics plus what it cost: a row of images through the network while training (a consistency step
    also sees a weak and a strong view of ssl_ratio unlabelled images per labelled one), and its training seconds
    in artefacts.json (costs.train_seconds): a time is not a result to pair across seeds, and it differs between
    otherwise identical runs."""
    exp.record("unlabelled", arm, seed, metrics)
    training = metrics.get("training", {})
    if "total_steps" not in training:
        return
    per_step = exp.cfg.classifier.batch_size * (1 + 2 * exp.cfg.unlabelled.ssl_ratio if ssl else 1)
    exp.add_row("unlabelled", arm, seed, "images_seen", training["total_steps"] * per_step)
    seconds = exp.artefacts["costs"].setdefault("train_seconds", {}).setdefault(exp.experiment_name("unlabelled"), {})
    seconds.setdefault(arm.name, {})[str(seed)] = training["train_seconds"]
