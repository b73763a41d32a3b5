"""sd-img2img: variations of each real training image with a pretrained Stable Diffusion (DA-Fusion style).

Each output starts from a real image of the class: its VAE latents are noised to `strength` (one drawn per
image from `strengths`; DA-Fusion draws from 0.25 / 0.5 / 0.75 / 1.0) and denoised with the class prompt.
Low strength keeps the image's layout; 1.0 keeps almost nothing of it. `fit` keeps the training images in
the run folder (generator.safetensors), so `synth make` needs nothing but the run folder and the model; with
`textual_inversion_steps > 0` it first learns one token per class on those images (DA-Fusion's per-class
textual inversion) and saves them as textual_inversion/<token>.safetensors, which any diffusers pipeline
can load with `load_textual_inversion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.data.base import ImageDataset
from synthaug.generators.base import GENERATORS, Generator, refuse_unlabelled
from synthaug.generators.sources import SourceImages, keep_sources
from synthaug.generators.stable_diffusion import (ImagePlan, StableDiffusionConfig, StableDiffusionGenerator, explain_out_of_memory,
                                                  generation_size, to_dataset_images, to_rgb_float)
from synthaug.generators.textual_inversion import TextualInversionSettings, TextualInversionTrainer, class_tokens
from synthaug.runs import Run
from synthaug.storage.checkpoints import load_tensors, save_tensors

EMBEDDINGS_DIR = "textual_inversion"


@dataclass
class Img2ImgConfig(StableDiffusionConfig):
    strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])  # noise strength, one drawn per image; 1 = ignore the source
    max_sources_per_class: int | None = None  # keep at most this many training images per class as sources (None: all)
    textual_inversion_steps: int = 0  # > 0: first learn one token per class on the training images (DA-Fusion: 2000)
    textual_inversion_lr: float = 4e-3  # Adam learning rate of the token vectors (DA-Fusion: 5e-4 x batch 8)
    textual_inversion_batch_size: int = 8  # training images per textual-inversion step
    textual_inversion_vectors: int = 1  # embedding vectors per class token

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if not self.strengths or any(not 0 < s <= 1 for s in self.strengths):
            raise ValueError(f"{name}.strengths must be a non-empty list of numbers in (0, 1], got {self.strengths}")
        if int(self.sampling_steps * min(self.strengths)) < 1:
            raise ValueError(f"{name}: sampling_steps {self.sampling_steps} x the smallest strength {min(self.strengths)} "
                             "leaves no denoising step; raise sampling_steps or the strengths")
        if self.max_sources_per_class is not None and self.max_sources_per_class < 1:
            raise ValueError(f"{name}.max_sources_per_class must be >= 1 or null, got {self.max_sources_per_class}")
        if self.textual_inversion_steps < 0 or self.textual_inversion_batch_size < 1 or self.textual_inversion_vectors < 1:
            raise ValueError(f"{name}: textual_inversion_steps must be >= 0, textual_inversion_batch_size and "
                             "textual_inversion_vectors >= 1")
        if self.textual_inversion_lr <= 0:
            raise ValueError(f"{name}.textual_inversion_lr must be > 0, got {self.textual_inversion_lr}")


@GENERATORS.register("sd-img2img")
class StableDiffusionImg2Img(StableDiffusionGenerator):
    """Pretrained Stable Diffusion image-to-image variations of each real image (DA-Fusion), optional per-class textual inversion."""

    name = "sd-img2img"
    Config = Img2ImgConfig
    cfg: Img2ImgConfig
    takes_sources = "required"

    def __init__(self, cfg: Img2ImgConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        self.sources: SourceImages | None = None  # the training images kept at fit
        self.learned_embeddings: dict[str, torch.Tensor] = {}  # textual inversion: {token: [vectors, dim]}
        self._img2img: Any = None
        self._img2img_of: Any = None  # the text pipeline it was derived from (a reload makes it stale)

    # -- prompts with learned tokens ---------------------------------------------------------------------
    def prompt_name(self, class_name: str) -> str:
        if self.learned_embeddings:
            return class_tokens(self.class_names)[class_name]
        return super().prompt_name(class_name)

    def prepare_pipeline(self, pipe: Any) -> None:
        if self.learned_embeddings:
            tokens = list(self.learned_embeddings)
            pipe.load_textual_inversion([{t: self.learned_embeddings[t]} for t in tokens], token=tokens)

    def img2img_pipeline(self) -> Any:
        """The image-to-image pipeline on the text pipeline's weights (AutoPipelineForImage2Image.from_pipe)."""
        text = self.text_pipeline()
        if self._img2img is None or self._img2img_of is not text:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = AutoPipelineForImage2Image.from_pipe(text)
            self._img2img.set_progress_bar_config(disable=True)
            self._img2img_of = text
        return self._img2img

    def plan_image(self, rng: np.random.Generator, label: int) -> ImagePlan:
        plan = super().plan_image(rng, label)
        plan.strength = float(self.cfg.strengths[int(rng.integers(len(self.cfg.strengths)))])
        return plan

    # -- sampling ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256, sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        sources = self.check_sources(labels, sources)
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        if len(labels) == 0:
            return out
        plans = self.plan(labels, seed)
        pipe = self.img2img_pipeline()
        size = generation_size(self.image_shape, self.generation_side())
        for part in self.batches(len(labels), batch_size):
            positions = range(part.start, part.stop)
            for strength in sorted({plans[i].strength for i in positions}):  # one strength per pipeline call
                members = [i for i in positions if plans[i].strength == strength]
                init = to_rgb_float(sources[members], size)
                with explain_out_of_memory(f"{self.name} generating {len(members)} images of {size[0]}x{size[1]}"):
                    images = pipe(image=init, strength=strength, **self.pipeline_call_kwargs([plans[i] for i in members])).images
                out[members] = to_dataset_images(images, self.image_shape)
        return out

    def source_set(self) -> SourceImages | None:
        return self.sources

    # -- fit: keep the sources, learn the class tokens ------------------------------------------------------
    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: Any = None) -> dict[str, Any]:
        refuse_unlabelled(self, unlabelled)
        self.learned_embeddings = {}
        summary = super().fit(data, run, resume)
        self.sources = keep_sources(data, self.cfg.max_sources_per_class, self.cfg.seed)
        summary["sources"] = len(self.sources)
        if self.cfg.textual_inversion_steps > 0:
            summary.update(self.learn_class_tokens(run, resume))
        return summary

    def learn_class_tokens(self, run: Run | None, resume: bool) -> dict[str, Any]:
        assert self.sources is not None and self.class_prompts is not None
        cfg = self.cfg
        settings = TextualInversionSettings(
            steps=cfg.textual_inversion_steps, lr=cfg.textual_inversion_lr, batch_size=cfg.textual_inversion_batch_size,
            vectors=cfg.textual_inversion_vectors, size=generation_size(self.image_shape, self.generation_side()), seed=cfg.seed,
            checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, progress=cfg.progress)
        trainer = TextualInversionTrainer(self.text_pipeline(), self.sources.images, self.sources.labels, self.class_names,
                                          self.class_prompts, settings, run)
        summary = trainer.train(resume=resume)
        self.learned_embeddings = trainer.embeddings()
        self._pipe = self._img2img = None  # that pipeline now holds the training's tokens: sampling loads a fresh one
        return summary

    # -- save / load ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.sources is None:
            return {}
        return {"sources.images": self.sources.images, "sources.labels": self.sources.labels, "sources.index": self.sources.index}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "sources.images" in state:
            self.sources = SourceImages(state["sources.images"], state["sources.labels"], state["sources.index"])

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        for token, vectors in self.learned_embeddings.items():  # diffusers' textual-inversion format, one file per class
            save_tensors(Path(directory) / EMBEDDINGS_DIR / f"{token.strip('<>')}.safetensors", {token: vectors})

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Generator:
        gen = super().load(directory, device=device)
        assert isinstance(gen, StableDiffusionImg2Img)
        expected = class_tokens(gen.class_names)
        for path in sorted((Path(directory) / EMBEDDINGS_DIR).glob("*.safetensors")):
            gen.learned_embeddings.update(load_tensors(path))
        unknown = set(gen.learned_embeddings) - set(expected.values())
        if unknown:
            raise ValueError(f"{directory}/{EMBEDDINGS_DIR} holds tokens {sorted(unknown)} of no class in {gen.class_names}")
        return gen
