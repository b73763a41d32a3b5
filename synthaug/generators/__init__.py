"""Class-conditional generators: one registry, one contract (fit, sample, save / load)."""

from synthaug.generators import cgan, cvae, diffusion  # noqa: F401  (register generators)
from synthaug.generators.base import GENERATORS, Generator, GeneratorConfig, load_generator, read_spec

__all__ = ["GENERATORS", "Generator", "GeneratorConfig", "load_generator", "read_spec"]
