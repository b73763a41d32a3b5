"""synthetic:PATH in the dataset registry: train on a synthetic set, test on the real test set it imitates."""

from __future__ import annotations

from pathlib import Path

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource, generator_data_config, hflip_keeps_label, load_full
from synthaug.storage.synthetic_store import read_manifest, read_stored_set


def read_synthetic(folder: str | Path, verify: bool = True) -> ImageDataset:
    """Load a synthetic dataset; a missing, truncated or altered shard raises an error naming the file."""
    folder = Path(folder)
    stored = read_stored_set(folder, verify)
    provenance = {k: stored.manifest.get(k) for k in ("generator", "seed", "filters", "requested_per_class")}
    provenance["source"] = "synthetic"
    provenance["path"] = str(folder)
    return ImageDataset(stored.images, stored.labels, stored.class_names, name=f"synthetic:{folder.name}",
                        provenance=provenance, scores=stored.scores)


@DATASETS.register("synthetic", prefix=True)
class SyntheticSource(DatasetSource):
    """synthetic:PATH made by `synthaug synth make`; its test split is the real test set of the generator's dataset."""

    def availability(self) -> tuple[bool, str]:
        if self.spec in (None, "?"):
            return True, "synthetic:PATH, a folder made by `synthaug synth make`"
        ok = (Path(self.spec) / "manifest.json").is_file()
        return ok, self.spec if ok else f"{self.spec} has no manifest.json"

    def _real_config(self):
        """The DataConfig of the real data set the synthetic set imitates (its generator's training data)."""
        run = read_manifest(self.spec)["generator"]["run"]
        try:
            return generator_data_config(run)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(f"synthetic:{self.spec}: cannot find the real data set it imitates ({exc})") from exc

    def hflip_keeps_label(self) -> bool:
        return hflip_keeps_label(self._real_config())  # images of a class keep their source's symmetries

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        train = read_synthetic(self.spec)
        _, test = load_full(self._real_config())
        if test.class_names != train.class_names:
            raise DatasetError(f"synthetic:{self.spec}: classes {train.class_names} differ from the real test set's {test.class_names}")
        return train, test
