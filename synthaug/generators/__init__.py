"""Class-conditional generators: one registry, one contract (fit, sample, save / load).

Trained from scratch: cgan, cvae, diffusion. Pretrained (optional extra `pretrained`): sd-text, sd-img2img,
style-transfer; their modules import diffusers / transformers only when used.
"""

from synthaug.generators import cgan, cvae, diffusion, sd_img2img, sd_text, style_transfer  # noqa: F401  (register generators)
from synthaug.generators.base import GENERATORS, Generator, GeneratorConfig, load_generator, read_spec
from synthaug.generators.sources import SourceImages, choose_sources, cycle_sources, sampling_mode, source_pool

__all__ = ["GENERATORS", "Generator", "GeneratorConfig", "SourceImages", "choose_sources", "cycle_sources", "load_generator",
           "read_spec", "sampling_mode", "source_pool"]
