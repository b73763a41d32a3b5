"""synthaug: does synthetic data from a generative model make my classifier better, and by how much?

The Python API (synthaug.api) is importable from here: synthaug.load_dataset, fit_generator, make_synthetic,
load_synthetic, as_torch_dataset, mix_datasets, train_classifier, run_experiment, export_image_folder,
import_image_folder. It is loaded on first use, so `import synthaug` stays fast for the CLI.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    import importlib

    api = importlib.import_module("synthaug.api")  # not `from synthaug import api`: that would call this again
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
