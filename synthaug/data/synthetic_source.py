"""synthetic:PATH in the dataset registry: train on a synthetic set, test on the real test set it imitates."""

from __future__ import annotations

from pathlib import Path

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource


@DATASETS.register("synthetic", prefix=True)
class SyntheticSource(DatasetSource):
    """synthetic:PATH made by `synthaug synth make`; its test split is the real test set of the generator's dataset."""

    def availability(self) -> tuple[bool, str]:
        if self.spec in (None, "?"):
            return True, "synthetic:PATH, a folder made by `synthaug synth make`"
        ok = (Path(self.spec) / "manifest.json").is_file()
        return ok, self.spec if ok else f"{self.spec} has no manifest.json"

    def _real_config(self):
        from synthaug.synthetic.make import generator_data_config
        from synthaug.synthetic.store import read_manifest

        run = read_manifest(self.spec)["generator"]["run"]
        try:
            return generator_data_config(run)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(f"synthetic:{self.spec}: cannot find the real data set it imitates ({exc})") from exc

    def hflip_keeps_label(self) -> bool:
        from synthaug.data.registry import hflip_keeps_label

        return hflip_keeps_label(self._real_config())  # images of a class keep their source's symmetries

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        from synthaug.data.registry import load_full
        from synthaug.synthetic.store import read_synthetic

        train = read_synthetic(self.spec)
        _, test = load_full(self._real_config())
        if test.class_names != train.class_names:
            raise DatasetError(f"synthetic:{self.spec}: classes {train.class_names} differ from the real test set's {test.class_names}")
        return train, test
