"""Class-conditional generators: one registry, one contract (fit, sample, save / load).

Trained from scratch: cgan, cvae, diffusion. Pretrained (optional extra `pretrained`): sd-text, sd-img2img,
style-transfer; their modules import diffusers / transformers only when used.
"""

from synthaug.generators import cgan, cvae, diffusion, sd_img2img, sd_text, style_transfer  # noqa: F401  (register generators)
from synthaug.generators.base import (GENERATORS, Generator, GeneratorConfig, SourceImages, cycle_sources, load_generator,
                                      read_spec)

__all__ = ["GENERATORS", "Generator", "GeneratorConfig", "SourceImages", "cycle_sources", "load_generator", "read_spec"]
