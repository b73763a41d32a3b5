"""sd-text: a pretrained text-to-image Stable Diffusion pipeline, one prompt per class ("a photo of a {name}").

The CIFAR-10 animal proposal's generator, and He et al. 2023's zero-shot setting: the model brings what it
learnt from web-scale data, nothing is trained on the user's images. Every image has its own seed (initial
latents and prompt choice), so the same seed gives the same image whatever the batch it is generated in.
"""

from __future__ import annotations

import torch

from synthaug.generators.base import GENERATORS
from synthaug.generators.stable_diffusion import (StableDiffusionConfig, StableDiffusionGenerator, explain_out_of_memory,
                                                  generation_size, to_dataset_images)


@GENERATORS.register("sd-text")
class StableDiffusionText(StableDiffusionGenerator):
    """Pretrained Stable Diffusion text-to-image (diffusers; hub id or local folder), prompts per class."""

    name = "sd-text"
    Config = StableDiffusionConfig

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256,
               sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        self.check_sources(labels, sources)  # none taken: given any, a clear error
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        if len(labels) == 0:
            return out
        plans = self.plan(labels, seed)
        pipe = self.text_pipeline()
        height, width = generation_size(self.image_shape, self.generation_side())
        for part in self.batches(len(labels), batch_size):
            with explain_out_of_memory(f"{self.name} generating {part.stop - part.start} images of {height}x{width}"):
                images = pipe(height=height, width=width, **self.pipeline_call_kwargs(plans[part])).images
            out[part] = to_dataset_images(images, self.image_shape)
        return out
