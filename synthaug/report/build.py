"""report.md + report.html from results.csv, summary.json and artefacts.json (never retrains)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.data import generator_data_config, load_data, read_synthetic
from synthaug.plots import save_class_grid, save_confusion_matrix
from synthaug.report import figures
from synthaug.report.answer import GROUPS, alpha_of, answer_sentence, forest_rows, headline, write_answer
from synthaug.report.blocks import Block, Figure, Heading, Para, Table, to_html, to_markdown
from synthaug.report.numbers import mean_ci, number, percent, points
from synthaug.report.tables import arm_details, arm_table, compute_table, metric_tables
from synthaug.stats import summarise
from synthaug.training.config import SSL_METHODS  # Arm.mixing of consistency-training arms
from synthaug.storage.run_config import CONFIG_FILE
from synthaug.storage.synthetic_store import read_manifest
from synthaug.utils import write_text_atomic

QUALITY_FIRST = ["fid", "kid", "precision", "recall", "evaluator_agreement"]  # the quality table; the rest in details
QUALITY_REST = ["inception_score", "density", "coverage", "mmd", "mmd_p_value", "memorisation_ratio"]


class ReportBuilder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.summary = json.loads((out / "summary.json").read_text())
        self.artefacts = json.loads((out / "artefacts.json").read_text())
        self.config = json.loads((out / "config.json").read_text())
        self.figures = out / "figures"
        self.figures.mkdir(exist_ok=True)
        self.blocks: list[Block] = []

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    @property
    def alpha(self) -> float:
        return alpha_of(self.summary, self.config.get("alpha", 0.05))

    @property
    def seeds(self) -> int:
        return len(self.summary.get("_meta", {}).get("seeds", []))

    def build(self) -> tuple[Path, Path]:
        meta = self.summary.get("_meta", {})
        self.add(Heading(f"synthaug report: {meta.get('name', 'experiment')}", 1))
        self.answer()
        if meta.get("notice"):
            self.add(Para(meta["notice"], role="notice"))
        self.leakage()
        data = self.config.get("resolved_data", {})
        regime = ", ".join(f"{k}={v}" for k, v in data.items() if k in ("per_class", "fraction", "imbalance_ratio") and v is not None)
        self.add(Para(f"Dataset **{meta.get('dataset')}** ({regime or 'full training set'}); classifier "
                      f"**{self.config['classifier']['model']}**; seeds {meta.get('seeds')}; every arm runs on the same seeds "
                      f"and is compared with the strong classical baseline seed by seed (paired t-test and Wilcoxon signed-rank). "
                      f"Run took {meta.get('seconds', 0) / 60:.1f} min ({meta.get('steps_ran')} steps run, "
                      f"{meta.get('steps_reused')} reused from cache); synthaug {meta.get('synthaug_version')}."))
        for section in (self.compare, self.views, self.training_length, self.quality, self.samples, self.losses, self.confusions, self.p_real,
                        self.data_efficiency, self.transfer, self.imbalance, self.unlabelled, self.optimizers, self.pca,
                        self.costs):
            section()
        md = to_markdown(self.blocks, self.out)
        write_text_atomic(self.out / "report.md", md)
        write_text_atomic(self.out / "report.html", to_html(self.blocks, f"synthaug report: {meta.get('name')}"))
        return self.out / "report.md", self.out / "report.html"

    # --- sections ---------------------------------------------------------------------------------------
    def answer(self) -> None:
        """The sentence and the forest plot that answer the run's question, first (also in answer.json for the
        served Reports page)."""
        summary = {**self.summary, "_meta": {"alpha": self.alpha, **self.summary.get("_meta", {})}}
        sentence = answer_sentence(summary)
        rows = forest_rows(summary)
        metric = headline(summary)[1]
        self.add(Para(sentence, role="answer"))
        forest = None
        if rows:
            forest = figures.forest_figure(self.figures / "forest.png", rows, GROUPS, metric)
            self.add(Figure(forest, f"test {metric} of each arm minus the strong baseline's, paired by seed: mean and 95% "
                                    f"CI in percentage points over {self.seeds} seeds; filled and labelled: significant "
                                    f"(paired t, alpha {self.alpha:g})", role="forest"))
        write_answer(self.out, sentence, forest)

    def leakage(self) -> None:
        """The warning of synthetic sets from pretrained models, at the top: they may have seen the test set."""
        warned: dict[str, str] = {}
        for name, per_seed in self.artefacts.get("synthetic", {}).items():
            for entry in per_seed.values():
                manifest = Path(entry["dir"]) / "manifest.json"
                if manifest.is_file() and (text := json.loads(manifest.read_text()).get("leakage_warning")):
                    warned[name] = text
        if warned:
            self.add(Para(f"**Leakage warning** (synthetic sets {', '.join(sorted(warned))}): {next(iter(warned.values()))}.",
                          role="notice"))

    def compare(self) -> None:
        entry = self.summary.get("compare")
        if not entry:
            return
        n_seeds = self.seeds
        self.add(Heading("Does synthetic data help? (headline)"), arm_table(entry, alpha=self.alpha, seeds=n_seeds),
                 Para(f"Δ: mean paired difference to the baseline over {n_seeds} seeds, in percentage points, with its 95% "
                      f"t-interval. Flags (hover or see the footnotes for the reason): helps / hurts when the paired t-test "
                      f"gives p < {self.alpha:g}, 'worse' for arms without synthetic images, 'on a class' when only a "
                      f"class's recall is significantly lower (Holm-corrected), n.s. otherwise. With {n_seeds} seeds the "
                      f"smallest possible two-sided Wilcoxon p is {2 / 2 ** max(n_seeds, 1):.2g}, so decisions rest on the "
                      "paired t-test."))
        details = arm_details(entry)
        if details:
            self.add(Heading("Details: other metrics, Wilcoxon, effect size, steps", 3), details,
                     Para("effect dz: the mean difference divided by the standard deviation of the differences "
                          f"(shown in the table above only from {5} seeds on: with fewer it swings widely)."))

    def views(self) -> None:
        """The same comparisons with the other training budget (compare_at), side by side with the headline."""
        views = self.config.get("compare_at") or []
        others = [k for k in self.summary if " @ " in k]
        if not others:
            return
        self.add(Heading("The same comparisons at another training budget"),
                 Para(f"Headline tables use '{views[0]}'. equal_steps: every arm trains for the baseline's steps (same "
                      "compute); tuned: every arm trains for the steps chosen on its own validation score (each at its "
                      "best). An arm that only helps in one view owes its effect to the budget."))
        for key in others:
            kind, view = key.split(" @ ")
            metric = "balanced_accuracy" if kind == "imbalance" else "accuracy"
            self.add(Heading(f"{kind} at {view.replace('_', ' ')}", 3),
                     arm_table(self.summary[key], metric, self.alpha, self.seeds))

    def training_length(self) -> None:
        """Steps chosen on validation (steps: auto): the grid, each arm's choice per seed, the accuracy-vs-steps curve."""
        tuning = self.artefacts.get("tuning", {})
        if not tuning:
            return
        first = next(iter(next(iter(tuning.values())).values()))
        how = (f"one stratified hold-out ({first['val_images']} images)" if first["folds"] == 1
               else f"{first['folds']}-fold cross-validation")
        self.add(Heading("Training length chosen on validation"),
                 Para(f"classifier.steps is auto: each arm's steps (and lr) were chosen by validation accuracy on {how} "
                      "of the labelled training images, never on the test set; the final model then trains on all labelled "
                      "images with the chosen value. Generators saw the validation images, so the validation scores of "
                      "synthetic arms may be optimistic."))
        rows, curves, chosen = [], {}, {}
        for label, per_seed in tuning.items():
            seeds = sorted(per_seed, key=int)
            grid = [(r["steps"], r["lr"]) for r in per_seed[seeds[0]]["table"]]
            cells = []
            for steps, lr in grid:
                values = [r["val_accuracy"] for s in seeds for r in per_seed[s]["table"] if (r["steps"], r["lr"]) == (steps, lr)]
                cells.append(f"{steps}" + (f" @ lr {lr:g}" if len({g[1] for g in grid}) > 1 else "") + f": {percent(np.mean(values))}")
            chosen[label] = [per_seed[s]["steps"] for s in seeds]
            rows.append([label, "; ".join(cells), ", ".join(str(c) for c in chosen[label])])
            curve_steps = sorted({p["step"] for s in seeds for p in per_seed[s]["curve"]})
            if curve_steps:
                points = [summarise([p["val_accuracy"] for s in seeds for p in per_seed[s]["curve"] if p["step"] == x])
                          for x in curve_steps]
                curves[label] = (curve_steps, points)
        self.add(Table(["arm (label)", "mean validation accuracy % per candidate steps", "steps chosen per seed"], rows))
        synthetic = [k for k in curves if k not in ("baseline", "plain") and not k.startswith(("baseline-", "oversampling"))]
        best = max(synthetic, key=lambda k: max(p["mean"] for p in curves[k][1]), default=None)
        shown = {k: curves[k] for k in ("baseline", best) if k in curves}
        if shown:
            path = figures.steps_figure(self.figures / "accuracy-vs-steps.png", shown, chosen)
            self.add(Figure(path, "validation accuracy along the longest candidate run (periodic evaluation within one run, "
                                  "mean and 95% CI over seeds): the baseline and the synthetic arm that scored best on validation"))

    def quality(self) -> None:
        entry = self.summary.get("quality")
        if not entry:
            return
        ev = self.artefacts.get("evaluator", {})
        self.add(Heading("Synthetic-set quality"),
                 Para(f"Features and probabilities from an evaluator classifier ({ev.get('model')}, test accuracy "
                      f"{percent(ev.get('accuracy'))} %) trained on the full real training set and used only for measuring; FID and "
                      f"KID are in that feature space, so they compare generators here, not with published InceptionV3 figures. "
                      f"Real reference: the test set. evaluator_agreement: share of synthetic images the evaluator assigns to "
                      f"their conditioned class."))
        tables = metric_tables(entry["arms"], QUALITY_FIRST, QUALITY_REST)
        if not tables:
            return
        first, *rest = tables
        self.add(first)
        if rest:
            self.add(Heading("Details: more quality measures", 3), *rest)

    def samples(self) -> None:
        synth = self.artefacts.get("synthetic", {})
        added = False
        for name, per_seed in synth.items():
            if name.endswith("-test"):
                continue
            first = per_seed[sorted(per_seed, key=int)[0]]
            folder = Path(first["dir"])
            if not (folder / "manifest.json").is_file():
                continue
            ds = read_synthetic(folder, verify=False)
            if not added:
                self.add(Heading("Samples: real vs synthetic"))
                self._real_grid()
                added = True
            path = save_class_grid(ds.images.numpy(), ds.labels.numpy(), ds.class_names, self.figures / f"samples-{name}.png")
            self.add(Figure(path, f"{name}: synthetic images, one row per class (first seed)"))

    def _real_grid(self) -> None:
        """The real training images of the first generator that recorded its data (none when no run did)."""
        gens = self.artefacts.get("generators", {})
        for per_seed in gens.values():
            first = per_seed[sorted(per_seed, key=int)[0]]
            if (Path(first["dir"]) / CONFIG_FILE).is_file():
                real = load_data(generator_data_config(first["dir"])).train
                path = save_class_grid(real.images.numpy(), real.labels.numpy(), real.class_names, self.figures / "samples-real.png")
                self.add(Figure(path, "real training images the generators saw (first seed)"))
                return

    def losses(self) -> None:
        gens = self.artefacts.get("generators", {})
        dirs = {name: Path(per_seed[sorted(per_seed, key=int)[0]]["dir"]) for name, per_seed in gens.items()}
        path = figures.loss_figure(self.figures / "generator-losses.png", dirs) if dirs else None
        if path:
            self.add(Heading("Generator training"), Figure(path, "loss curves of each generator (first seed)"))

    def confusions(self) -> None:
        conf = self.artefacts.get("confusion", {}).get("compare")
        entry = self.summary.get("compare")
        if not conf or not entry:
            return
        names = self.artefacts.get("class_names", [])
        base = entry["baseline"]
        others = [a for a in conf if a != base]
        best = max(others, key=lambda a: entry["arms"][a]["accuracy"]["mean"]) if others else None
        self.add(Heading("Confusion matrices (summed over seeds)"))
        self.add(Figure(save_confusion_matrix(np.array(conf[base]), names, self.figures / "cm-baseline.png", title=base),
                        f"baseline: {base}"))
        if best:
            cm_best, cm_base = np.array(conf[best]), np.array(conf[base])
            self.add(Figure(save_confusion_matrix(cm_best, names, self.figures / "cm-best.png", title=best), f"best arm: {best}"))
            diff = cm_best / np.maximum(cm_best.sum(1, keepdims=True), 1) - cm_base / np.maximum(cm_base.sum(1, keepdims=True), 1)
            self.add(Figure(save_confusion_matrix(diff, names, self.figures / "cm-difference.png", title="best arm minus baseline",
                                                  diverging=True),
                            "difference of row-normalised confusion matrices (blue: more often, red: less often than the baseline)"))

    def p_real(self) -> None:
        entry = self.summary.get("p-real")
        if not entry:
            return
        series: dict[str, dict[float, dict]] = {}
        for arm, metrics in entry["arms"].items():
            fields = entry.get("fields", {}).get(arm, {})
            if fields.get("group") == "p_real" and fields.get("p_real") is not None:
                series.setdefault(fields["generator"], {})[fields["p_real"]] = metrics["accuracy"]
        if not series:
            self.add(Heading("Real/synthetic mix"), arm_table(entry, alpha=self.alpha, seeds=self.seeds),
                     Para("(No accuracy-vs-p_real figure: this run's results predate the arms' structured fields.)"))
            return
        ps = sorted({p for s in series.values() for p in s})
        path = figures.curve_figure(self.figures / "p-real.png", ps, {n: [s[p] for p in ps] for n, s in series.items()},
                                    "p_real (share of real images per batch)", "test accuracy", "Accuracy vs p_real",
                                    percent=True)
        self.add(Heading("Real/synthetic mix: accuracy vs p_real"),
                 Para("p_real=1 is the all-real baseline; p_real=0 trains on synthetic images only (train-synthetic/test-real)."),
                 Figure(path, "mean test accuracy with 95% CI over seeds"), arm_table(entry, alpha=self.alpha, seeds=self.seeds))

    def data_efficiency(self) -> None:
        entry = self.summary.get("data-efficiency")
        if not entry:
            return
        curves: dict[str, dict[int, dict]] = {}
        for arm, metrics in entry["arms"].items():
            fields = entry.get("fields", {}).get(arm, {})
            if fields.get("budget") is not None:
                curves.setdefault(fields.get("generator") or "baseline", {})[fields["budget"]] = metrics["accuracy"]
        budgets = sorted({b for c in curves.values() for b in c})
        if not budgets:
            self.add(Heading("Data efficiency"), Para("(No figure: this run's results predate the arms' structured fields.)"))
            return
        path = figures.curve_figure(self.figures / "data-efficiency.png", budgets,
                                    {n: [c[b] for b in budgets] for n, c in curves.items()},
                                    "real labelled images per class", "test accuracy", "Data efficiency", logx=True,
                                    percent=True)
        self.add(Heading("Data efficiency"), Figure(path, "mean test accuracy with 95% CI over seeds"))
        saved = entry.get("labels_saved", {})
        rows = []
        for name, per_budget in saved.items():
            for row in per_budget:
                if row["status"] == "ok" and row["saved"] < 0:
                    needed = number(row["needed"], 1)
                    result = f"none: worth only {row['needed']:.1f} real labels/class ({100 * row['needed'] / row['budget']:.0f}% of the budget)"
                elif row["status"] == "ok":
                    needed, result = number(row["needed"], 1), f"{100 * row['saved']:.0f}%"
                elif row["status"] == ">max":
                    needed, result = f"> {max(r['budget'] for r in per_budget):g}", f"at least {100 * row['saved_bound']:.0f}%"
                else:
                    needed, result = f"< {min(r['budget'] for r in per_budget):g}", "none (below the baseline's first point)"
                rows.append([name, f"{row['budget']:g}", percent(row["baseline"]), percent(row["augmented"]), needed, result])
        if rows:
            self.add(Para("Labels saved: how many real labels per class the baseline needs (interpolated in log budget on "
                          "its mean curve) to match the augmented model's mean accuracy; saved = 1 - budget / needed "
                          "(negative when the augmented model is worse). The measurable form of a 'lower labelling cost' "
                          "claim; it carries the curves' seed-to-seed noise (see the CIs in the figure)."),
                     Table(["generator", "budget/class", "baseline accuracy %", "augmented accuracy %", "baseline needs /class",
                            "labels saved"], rows))

    def transfer(self) -> None:
        entry = self.summary.get("transfer")
        if not entry:
            return
        self.add(Heading("Transfer: train on synthetic / test on real and the reverse"),
                 Table(["train / test", "accuracy % [95% CI]", "macro_f1 % [95% CI]"],
                       [[arm, mean_ci(m.get("accuracy"), "accuracy"), mean_ci(m.get("macro_f1"), "macro_f1")]
                        for arm, m in entry["arms"].items()]))
        names = self.artefacts.get("class_names", [])
        for i, (arm, cm) in enumerate(self.artefacts.get("confusion", {}).get("transfer", {}).items()):
            path = save_confusion_matrix(np.array(cm), names, self.figures / f"cm-transfer-{i}.png", title=arm)
            self.add(Figure(path, f"confusion matrix: {arm} (summed over seeds)"))

    def imbalance(self) -> None:
        entry = self.summary.get("imbalance")
        if entry:
            self.add(Heading("Class imbalance: rebalancing with synthetic images"),
                     arm_table(entry, "balanced_accuracy", self.alpha, self.seeds))
            details = arm_details(entry, "balanced_accuracy", ("minority_recall", "macro_f1", "accuracy"))
            if details:
                self.add(Heading("Details: minority recall, macro F1, accuracy", 3), details)

    def unlabelled(self) -> None:
        """The unlabelled-pool study: the arm table, accuracy against strength t, and sources beside their variations."""
        entry = self.summary.get("unlabelled")
        if not entry:
            return
        pseudo = self.artefacts.get("pseudo_label", {})
        kept = ", ".join(f"seed {s}: {v['kept']} of {v['pool']}" for s, v in sorted(pseudo.items(), key=lambda kv: int(kv[0])))
        self.add(Heading("Unlabelled pool: variations, class samples and pseudo-labelling"),
                 Para("Variations: each labelled image noised to strength t and denoised towards its class (SDEdit), M per "
                      "image, mixed in at the configured share of each batch. t = 0 would be the real image itself (the "
                      "baseline), t = 1 generation from pure noise. Pseudo-labelling uses the same pool directly: the "
                      f"baseline classifier labels the pool images it is sure of (kept: {kept or 'none'})."),
                 arm_table(entry, alpha=self.alpha, seeds=self.seeds))
        ssl_arms = [a for a, f in entry.get("fields", {}).items() if str(f.get("mixing") or "").split("+")[0] in SSL_METHODS]
        if ssl_arms:
            dpt = self.artefacts.get("dpt_pseudo_label", {})
            dpt_kept = ", ".join(f"seed {s}: {v['kept']} of {v['pool']}" for s, v in sorted(dpt.items(), key=lambda kv: int(kv[0])))
            self.add(Para("Consistency training (FixMatch family): each step also sees a weak and a strong view of unlabelled "
                          "pool images; the weak view's confident prediction is the target for the strong view, and the "
                          "moving average of the weights is the model tested. It trains at its own fixed length, so compare "
                          "its cost below. " + (f"DPT route: a generator fitted on the labelled images plus the pool images "
                          f"the consistency-trained model labels confidently (kept: {dpt_kept}); its class samples are "
                          "added to the baseline and to consistency training." if dpt else "")))
        costs = compute_table(entry, self.artefacts.get("costs", {}).get("train_seconds", {}).get("unlabelled"))
        if costs:
            self.add(Heading("What each arm cost to train", 3), costs)
        curves: dict[str, dict[float, dict]] = {}
        for arm, metrics in entry["arms"].items():
            fields = entry.get("fields", {}).get(arm, {})
            if fields.get("group") == "pool" and fields.get("strength") is not None:
                name = f"{fields['generator']} M={fields.get('per_image')}"
                curves.setdefault(name, {})[fields["strength"]] = metrics["accuracy"]
        base = entry["arms"].get(entry["baseline"], {}).get("accuracy")
        if curves and base:
            ts = sorted({0.0, *{t for c in curves.values() for t in c}})
            series = {name: [c.get(t, base if t == 0.0 else {"mean": float("nan")}) for t in ts] for name, c in curves.items()}
            path = figures.curve_figure(self.figures / "accuracy-vs-strength.png", ts, series, "strength t (0 = the real image)",
                                        "test accuracy", "Variations: accuracy vs strength", percent=True)
            self.add(Figure(path, "mean test accuracy with 95% CI over seeds; t = 0 is the baseline"))
        grid = self._variation_grid()
        if grid:
            self.add(Figure(grid, "variation grid: each row a labelled image (left) and its variations at each strength"))

    def _variation_grid(self) -> Path | None:
        """Rows: one labelled image per class, then its first variation at each strength (first seed, first M)."""
        sets = {}
        for per_seed in self.artefacts.get("synthetic", {}).values():
            first = per_seed[sorted(per_seed, key=int)[0]]
            if first.get("strength") is not None:  # a set of variations at one strength (older runs: no grid)
                sets.setdefault(first["generator"], {}).setdefault(first["per_image"], {})[first["strength"]] = Path(first["dir"])
        if not sets:
            return None
        name, by_m = next(iter(sets.items()))
        by_t = by_m[min(by_m)]
        strengths = sorted(by_t)
        manifest = read_manifest(by_t[strengths[0]])
        train = load_data(generator_data_config(manifest["generator"]["run"])).train
        rows, labels, titles = [], [], []
        for k, cls in enumerate(train.class_names):
            source = int((train.labels == k).nonzero()[0])
            row = [train.images[source].numpy()]
            for t in strengths:
                ds, details = read_synthetic(by_t[t], verify=False), read_manifest(by_t[t]).get("per_image", {})
                position = details.get("source_index", []).index(source) if source in details.get("source_index", []) else None
                row.append(ds.images[position].numpy() if position is not None else np.full_like(row[0], 255))
            rows += row
            labels += [k] * len(row)
            titles.append(cls)
        return save_class_grid(np.stack(rows), np.array(labels), titles, self.figures / f"variations-{name}.png",
                               per_class=1 + len(strengths))

    def optimizers(self) -> None:
        entry = self.summary.get("optimizers")
        if not entry:
            return
        metrics = sorted({m for a in entry["arms"].values() for m in a})
        first = ["cas", "fid", "kid", "precision", "recall", "train_seconds", "health_warnings"]
        rest = [m for m in metrics if m.endswith("_std")]
        self.add(Heading("GAN optimisers: Adam vs RMSProp"),
                 Para("CAS: accuracy on the real test set of the classifier trained on synthetic images only. *_std: standard "
                      "deviation of each loss over the second half of training (lower = more stable)."),
                 *metric_tables(entry["arms"], first, rest))

    def pca(self) -> None:
        files = sorted((self.out / "features").glob("*.npz")) if (self.out / "features").is_dir() else []
        if files:
            self.add(Heading("Feature space: PCA of real vs synthetic"))
        for f in files:
            path = figures.pca_figure(self.figures / f"pca-{f.stem}.png", f, f"PCA of evaluator features: {f.stem}")
            self.add(Figure(path, f"{f.stem}: real training images (left) and synthetic images (right), first seed"))

    def costs(self) -> None:
        gens, synth = self.artefacts.get("generators", {}), self.artefacts.get("synthetic", {})
        if not gens:
            return
        compare = self.summary.get("compare", {})
        rows = []
        for name, per_seed in gens.items():
            fit = [v["seconds"] for v in per_seed.values()]
            device = next(iter(per_seed.values())).get("device", "cpu")
            sampled = [(s.get("images", 0), s.get("seconds", 0)) for s in synth.get(name, {}).values() if s.get("seconds")]
            rate = sum(i for i, _ in sampled) / max(sum(t for _, t in sampled), 1e-9) if sampled else None
            gain = None
            for arm, t in compare.get("tests", {}).items():
                fields = compare.get("fields", {}).get(arm, {})
                if fields.get("group") == "generators" and fields.get("generator") == name and "accuracy" in t:
                    gain = t["accuracy"]["mean_diff"]
            minutes = (np.mean(fit) + (np.mean([t for _, t in sampled]) if sampled else 0)) / 60
            rows.append([name, device, f"{np.mean(fit):.1f}", number(rate, 1), points(gain),
                         number(100 * gain / minutes if gain is not None else None, 3)])
        self.add(Heading("Cost"),
                 Table(["generator", "device", "fit seconds (mean per seed)", "synthetic images/s (incl. filtering)",
                        "accuracy gain vs baseline, points", f"points per {rows[0][1] if rows else 'CPU'}-minute"], rows))


def build_report(out: str | Path) -> tuple[Path, Path]:
    return ReportBuilder(Path(out)).build()
