"""ExperimentConfig: one YAML file answers "does synthetic data help, by how much, with which recipe?"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from synthaug.config import ConfigError
from synthaug.data import DataConfig
from synthaug.generators import GENERATORS
from synthaug.generators.api import generator_config
from synthaug.generators.sources import varies_sources
from synthaug.training.config import SSL_METHODS, SSL_STEPS, TrainConfig

KINDS = ("compare", "transfer", "p-real", "data-efficiency", "optimizers", "imbalance", "unlabelled")
VIEWS = ("equal_steps", "tuned")  # how arms get their training budget (compare_at)
STRATEGIES = ("add", "p_real", "synthetic-only", "pretrain-finetune")


@dataclass
class GeneratorSpec:
    name: str = "cgan"  # label used in reports and arm names
    generator: str = "cgan"  # generator registry key
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the generator's Config dataclass
    unlabelled: bool = False  # also train on the data's unlabelled pool (data.unlabelled; diffusion only)
    pseudo_labels: bool = False  # the DPT route (unlabelled kind): fit on the labelled images plus the pool images the
    #   first consistency-training arm (unlabelled.ssl) labels with confidence >= unlabelled.dpt_tau, never true labels


@dataclass
class SyntheticSpec:
    per_class: int = 500  # synthetic images per class kept after filtering
    per_image: int | None = None  # generators that vary real images (sd-img2img, style-transfer): images per real
    #   image, replacing per_class (DA-Fusion: 10; the Stevens report: 3)
    filters: list[str] = field(default_factory=list)  # e.g. confidence:tau=0.5
    oversample: float = 1.5  # candidates per round as a multiple of what is missing
    batch_size: int = 256  # images per generator call


@dataclass
class MixSpec:
    strategy: Literal["add", "p_real", "synthetic-only", "pretrain-finetune"] = "add"
    p_real: float = 0.5  # share of real images per batch for strategy p_real
    synthetic_label_smoothing: float | None = None  # soft labels on synthetic images (None: as real)
    finetune_fraction: float = 0.3  # pretrain-finetune: share of steps spent fine-tuning on real images only

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"MixSpec.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0 <= self.p_real <= 1:
            raise ValueError(f"MixSpec.p_real must be in [0, 1], got {self.p_real}")
        if not 0 < self.finetune_fraction < 1:
            raise ValueError(f"MixSpec.finetune_fraction must be in (0, 1), got {self.finetune_fraction}")


@dataclass
class UnlabelledSpec:
    """The unlabelled-pool study: variations of each labelled image, pseudo-labelling of the pool, class samples."""

    strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # SDEdit strengths swept (one arm each)
    per_image: list[int] = field(default_factory=lambda: [10])  # variations per labelled image swept (one arm each)
    p_real: float = 0.5  # share of real images per batch in the variation and pseudo-label arms (DA-Fusion: 0.5)
    pseudo_label_tau: float = 0.9  # teacher confidence a pool image needs to be pseudo-labelled
    pseudo_label_max: int | None = None  # keep at most this many pseudo-labelled images (the most confident)
    class_samples: bool = True  # also an arm of class-conditional samples (no source image) per pool-trained generator
    ssl: list[str] = field(default_factory=list)  # consistency-training arms on the pool: fixmatch, freematch
    ssl_steps: int = SSL_STEPS  # their optimiser steps: a fixed length of its own (FixMatch trains far longer than a
    #   supervised run; the report prints each arm's steps, images seen and CPU seconds beside its accuracy)
    ssl_ratio: int = 3  # unlabelled images per labelled image in a batch (FixMatch's mu: 7 in the paper, 3 measured here)
    ssl_threshold: float = 0.95  # fixmatch: confidence a weak-view prediction needs to become a target
    ssl_synthetic: list[str] = field(default_factory=list)  # synthetic sets of this kind (their labels: e.g.
    #   pool-diffusion-samples, pool-diffusion-var-t0.75-m10, dpt-samples) added to every ssl arm's labelled stream
    dpt_tau: float = 0.95  # the DPT route: confidence a pool image's pseudo-label needs to train the generator

    def __post_init__(self) -> None:
        if not self.strengths or any(not 0 < s <= 1 for s in self.strengths):
            raise ValueError(f"UnlabelledSpec.strengths must be numbers in (0, 1], got {self.strengths}")
        if not self.per_image or any(m < 1 for m in self.per_image):
            raise ValueError(f"UnlabelledSpec.per_image must be positive counts, got {self.per_image}")
        if not 0 <= self.p_real <= 1 or not 0 <= self.pseudo_label_tau <= 1:
            raise ValueError(f"UnlabelledSpec: p_real and pseudo_label_tau must be in [0, 1], got {self.p_real}, "
                             f"{self.pseudo_label_tau}")
        bad = [m for m in self.ssl if m not in SSL_METHODS]
        if bad or len(set(self.ssl)) != len(self.ssl):
            raise ValueError(f"UnlabelledSpec.ssl: give fixmatch and/or freematch once each, got {self.ssl}")
        if self.ssl_steps < 1 or self.ssl_ratio < 1 or not 0 < self.ssl_threshold <= 1 or not 0 <= self.dpt_tau <= 1:
            raise ValueError(f"UnlabelledSpec: ssl_steps and ssl_ratio must be >= 1, ssl_threshold in (0, 1], dpt_tau in "
                             f"[0, 1]; got {self.ssl_steps}, {self.ssl_ratio}, {self.ssl_threshold}, {self.dpt_tau}")
        if self.ssl_synthetic and not self.ssl:
            raise ValueError("UnlabelledSpec.ssl_synthetic adds synthetic sets to consistency-training arms: name "
                             "them in unlabelled.ssl (fixmatch, freematch)")


@dataclass
class ExperimentConfig:
    name: str = "experiment"  # names the results
    kinds: list[str] = field(default_factory=lambda: ["compare"])  # compare, transfer, p-real, data-efficiency, optimizers, imbalance
    data: DataConfig = field(default_factory=DataConfig)  # dataset and low-data / imbalance regime
    fallback_data: DataConfig | None = None  # used (with a notice) when `data` cannot be loaded here
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # every arm runs on the same seeds
    vary_subset: bool = True  # re-draw the labelled subset (and re-fit generators) per seed; false: data.seed for all
    classifier: TrainConfig = field(default_factory=TrainConfig)  # the strong baseline's recipe (its augmentation included)
    plain_augment: list[str] = field(default_factory=list)  # augmentation of the weak "real, no augmentation" arm
    generators: list[GeneratorSpec] = field(default_factory=list)
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    mix: MixSpec = field(default_factory=MixSpec)
    unlabelled: UnlabelledSpec = field(default_factory=UnlabelledSpec)  # the unlabelled kind: pool study settings
    p_real_values: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])  # p-real sweep
    p_real_generators: list[str] | None = None  # generators in the p-real sweep (default: all)
    budgets: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])  # data-efficiency: real images per class
    optimizers: list[str] = field(default_factory=lambda: ["adam", "rmsprop"])  # optimizers kind: GAN optimisers compared
    evaluator: TrainConfig | None = None  # classifier trained on the FULL real training set, used only as feature
    #   extractor for FID / KID / IS / precision-recall (never for training arms); None: classifier recipe, 10 epochs
    compare_at: list[str] | None = None  # budget views, the first is the headline: equal_steps (every arm the baseline's
    #   steps) and/or tuned (each arm its own steps chosen on validation; needs classifier.steps auto). None: tuned
    #   when classifier.steps is auto, else equal_steps
    alpha: float = 0.05  # significance level of the paired tests
    device: str = "auto"  # auto, cpu, cuda

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"ExperimentConfig.kinds: unknown {unknown}; choose from {', '.join(KINDS)}")
        if not self.seeds:
            raise ValueError("ExperimentConfig.seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"ExperimentConfig.seeds has duplicates: {self.seeds}")
        needs_generator = {"compare", "transfer", "p-real", "data-efficiency", "imbalance"} & set(self.kinds)
        if needs_generator - {"compare"} and not self.generators:
            raise ValueError(f"ExperimentConfig: kinds {sorted(needs_generator)} need at least one entry in `generators`")
        names = [g.name for g in self.generators]
        if len(set(names)) != len(names):
            raise ValueError(f"ExperimentConfig.generators: names must be unique, got {names}")
        for p in self.p_real_values:
            if not 0 <= p <= 1:
                raise ValueError(f"ExperimentConfig.p_real_values: {p} is not in [0, 1]")
        if "unlabelled" in self.kinds and self.data.unlabelled is None:
            raise ValueError("ExperimentConfig: the unlabelled kind needs data.unlabelled (rest or a number of images)")
        if any(g.unlabelled for g in self.generators) and self.data.unlabelled is None:
            raise ValueError("ExperimentConfig: a generator with unlabelled: true needs data.unlabelled")
        dpt = [g.name for g in self.generators if g.pseudo_labels]
        if dpt and ("unlabelled" not in self.kinds or not self.unlabelled.ssl):
            raise ValueError(f"ExperimentConfig.generators {dpt}: pseudo_labels: true (the DPT route) needs the unlabelled "
                             "kind and a consistency-training arm (unlabelled.ssl: [fixmatch]) whose labels it trains on")
        if dpt and set(self.kinds) - {"unlabelled"}:
            raise ValueError(f"ExperimentConfig.generators {dpt}: a pseudo_labels generator is fitted only by the "
                             f"unlabelled kind; run the kinds {sorted(set(self.kinds) - {'unlabelled'})} in another config")
        if "imbalance" in self.kinds and self.data.imbalance_ratio is None and self.data.class_counts is None:
            raise ValueError("ExperimentConfig: the imbalance kind needs data.imbalance_ratio or data.class_counts")
        if any(b < 1 for b in self.budgets):
            raise ValueError(f"ExperimentConfig.budgets must be >= 1, got {self.budgets}")
        if self.compare_at is None:
            self.compare_at = ["tuned"] if self.classifier.steps == "auto" else ["equal_steps"]
        unknown_views = [v for v in self.compare_at if v not in VIEWS]
        if unknown_views or not self.compare_at or len(set(self.compare_at)) != len(self.compare_at):
            raise ValueError(f"ExperimentConfig.compare_at: give one or both of {', '.join(VIEWS)} once each, got {self.compare_at}")
        if "tuned" in self.compare_at and self.classifier.steps != "auto":
            raise ValueError("ExperimentConfig.compare_at: 'tuned' needs classifier.steps: auto (steps chosen on validation "
                             f"per arm); classifier.steps is {self.classifier.steps!r}")
        check_generator_settings(self)


def optimizer_generator(cfg: ExperimentConfig) -> GeneratorSpec | None:
    """The generator the optimizers kind trains once per optimiser: the first whose Config has an `optimizer` setting."""
    return next((g for g in cfg.generators if GENERATORS.resolve(g.generator)[0].has_setting("optimizer")), None)


def check_generator_settings(cfg: ExperimentConfig) -> None:
    """Every setting the experiment hands a generator (its `config`, the optimizers kind's `optimizer`, the unlabelled
    kind's variation `strengths`) must be one the generator has, with a valid value: checked here, before any fitting,
    rather than when the step that uses it runs."""
    def check(spec: GeneratorSpec, settings: dict[str, Any], why: str) -> None:
        try:
            generator_config(spec.generator, {**spec.config, **settings})
        except ConfigError as exc:
            raise ValueError(f"ExperimentConfig.generators[{spec.name!r}]{why}: {exc}") from exc

    for spec in cfg.generators:
        if spec.generator not in GENERATORS:
            raise ValueError(f"ExperimentConfig.generators[{spec.name!r}].generator: unknown generator {spec.generator!r}; "
                             f"available: {', '.join(GENERATORS.available())}")
        check(spec, {}, ".config")
    if "optimizers" in cfg.kinds:
        spec = optimizer_generator(cfg)
        if spec is None:
            able = [n for n in GENERATORS.available() if GENERATORS.resolve(n)[0].has_setting("optimizer")]
            raise ValueError(f"ExperimentConfig: the optimizers kind sets each generator `optimizer` of {cfg.optimizers}, but "
                             f"no generator in `generators` ({', '.join(g.generator for g in cfg.generators) or 'none'}) has "
                             f"that setting; add one that does ({', '.join(able)})")
        for opt in cfg.optimizers:
            check(spec, {"optimizer": opt}, f" (the optimizers kind's optimizer {opt!r})")
    if "unlabelled" in cfg.kinds:
        for spec in cfg.generators:
            cls = GENERATORS.resolve(spec.generator)[0]
            if not varies_sources(cls):
                continue
            if not cls.has_setting("strengths"):
                raise ValueError(f"ExperimentConfig: the unlabelled kind makes variations at each of unlabelled.strengths "
                                 f"{cfg.unlabelled.strengths} through the generator setting `strengths`, but generator "
                                 f"{spec.name!r} ({spec.generator}) has no `strengths` setting; remove it from `generators` "
                                 "or drop the unlabelled kind")
            for t in cfg.unlabelled.strengths:
                check(spec, {"strengths": [t]}, f" (the unlabelled kind's strength {t:g})")
