"""What the pretrained Stable Diffusion generators (`sd-text`, `sd-img2img`) share: finding and loading a
diffusers pipeline (hub id or local folder, offline-aware, safetensors only), prompts per class, one seed per
image, memory settings, resizing the pipeline's images to the dataset's, and the provenance every synthetic set
made from them records (model, revision, prompts, and the leakage warning).

diffusers and transformers are imported inside functions: `import synthaug` stays fast, and a machine without
the optional `pretrained` extra only fails when one of these generators is used, with a message saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from synthaug.config import ConfigError
from synthaug.data.base import ImageDataset
from synthaug.generators.base import Generator, GeneratorConfig, read_spec, refuse_unlabelled
from synthaug.runs import Run
from synthaug.utils import resolve_device
from synthaug.utils import cpu_has_fast_bf16

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "SYNTHAUG_OFFLINE")
LEAKAGE_WARNING = ("possible test-set leakage: this synthetic set comes from a model pretrained on web-scale data "
                   "(e.g. LAION for Stable Diffusion, ImageNet for VGG-19), which may contain your test images or near "
                   "copies of them; gains over real-only training can then overstate what the synthetic data add")
# settings that need the pipeline reloaded (or re-configured) when changed by `override`
PIPELINE_FIELDS = {"model", "revision", "variant", "precision", "device", "attention_slicing", "cpu_offload", "scheduler"}


class PretrainedModelError(RuntimeError):
    """A pretrained model, its optional dependencies or its weights cannot be used as asked; the message says why
    and how to fix it."""


@dataclass
class StableDiffusionConfig(GeneratorConfig):
    """Settings of a pretrained Stable Diffusion generator. Nothing is trained from scratch, so the training fields
    inherited from GeneratorConfig (steps, batch_size, lr, sample_every, snapshot_every) are unused; `seed`,
    `device`, `progress`, `checkpoint_every` and `log_every` apply."""

    model: str = DEFAULT_MODEL  # hub id, or a local folder holding a diffusers pipeline (model_index.json)
    revision: str | None = None  # hub branch, tag or commit (None: main); the commit actually used is recorded
    variant: str | None = None  # hub weight variant, e.g. fp16 (half the download); None: the full-precision files
    prompts: list[str] = field(default_factory=lambda: ["a photo of a {name}"])  # templates, {name} = class name; one drawn per image
    prompt_file: str | None = None  # YAML mapping class name -> prompt or list of prompts; classes it omits use `prompts`
    negative_prompt: str = ""  # what images must not show (guidance pushes away from it); "" = none
    guidance_scale: float = 7.5  # classifier-free guidance; 1 = off
    sampling_steps: int = 25  # denoising steps (img2img runs about strength x this many)
    scheduler: Literal["dpm++", "ddim", "euler-a", "model"] = "dpm++"  # sampler; model = the one saved with the pipeline
    size: int | None = None  # generation size in pixels of the longer side (multiple of 8); None: the pipeline's native
    #   resolution (its UNet's sample size x the VAE's scale: 512 for SD 1.5, 768 for SD 2, 1024 for SDXL, as diffusers
    #   does). Outputs are resized to the dataset's
    generation_batch_size: int = 8  # images per pipeline call at most (GPU memory); a smaller --batch-size wins
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # weights and activations; auto: fp16 on GPU, fp32 on CPU
    attention_slicing: bool = False  # attention in slices: less GPU memory, slightly slower
    cpu_offload: bool = False  # accelerate's enable_model_cpu_offload: each sub-model on the GPU only while it runs

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if not self.model:
            raise ValueError(f"{name}.model must name a hub id or a local pipeline folder")
        if not self.prompts or any(not p.strip() for p in self.prompts):
            raise ValueError(f"{name}.prompts must be a non-empty list of non-empty templates, got {self.prompts}")
        if self.guidance_scale < 0:
            raise ValueError(f"{name}.guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.sampling_steps < 1:
            raise ValueError(f"{name}.sampling_steps must be >= 1, got {self.sampling_steps}")
        if self.size is not None and (self.size < 8 or self.size % 8):
            raise ValueError(f"{name}.size must be a positive multiple of 8 (the VAE works on 8x8 blocks), got {self.size}")
        if self.generation_batch_size < 1:
            raise ValueError(f"{name}.generation_batch_size must be >= 1, got {self.generation_batch_size}")


# --- finding and loading the model ----------------------------------------------------------------------

def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV)


def require_pretrained_extra(what: str) -> None:
    """transformers (the CLIP text encoder) and accelerate come with the optional extra `pretrained`."""
    missing = [m for m in ("transformers", "diffusers") if importlib.util.find_spec(m) is None]
    if missing:
        raise PretrainedModelError(f"{what} needs {' and '.join(missing)}, which come with the optional extra `pretrained`: "
                                   "pip install 'synthaug[pretrained]' (or `make install`)")


@dataclass
class ResolvedModel:
    """Where a pipeline's files are and which version they are (for manifests)."""

    model: str  # as given: hub id or folder
    folder: str  # local folder holding model_index.json
    revision: str | None  # asked-for hub revision (None for folders)
    commit: str | None  # hub commit of the cached snapshot (None for folders)
    fingerprint: str  # sha256 of the pipeline's config files and weight-file sizes: changes when the model does

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def folder_fingerprint(folder: Path) -> str:
    """Hash of every JSON config and the name and size of every other file (hashing GBs of weights takes too long)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode())
        h.update(path.read_bytes() if path.suffix in (".json", ".txt") else str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str, revision: str | None = None, variant: str | None = None) -> ResolvedModel:
    """A local pipeline folder as is, or a hub id through the Hugging Face cache (downloaded once when online;
    only the cache when HF_HUB_OFFLINE=1). Only safetensors weights are fetched or accepted."""
    path = Path(model).expanduser()
    if path.exists() or _looks_like_path(model):
        if not path.is_dir():
            what = "is a file, not a folder" if path.exists() else "does not exist"
            raise PretrainedModelError(f"model folder {model} {what}; pass --set model= a folder saved with "
                                       f"pipeline.save_pretrained(FOLDER), or a hub id such as {DEFAULT_MODEL}")
        if not (path / "model_index.json").is_file():
            raise PretrainedModelError(f"{model} is not a diffusers pipeline folder (no model_index.json); point --set model= "
                                       f"at a folder saved with pipeline.save_pretrained(FOLDER), or at a hub id such as {DEFAULT_MODEL}")
        return ResolvedModel(model, str(path.resolve()), None, None, folder_fingerprint(path))
    require_pretrained_extra(f"model {model!r}")
    from diffusers import DiffusionPipeline

    try:
        folder = Path(DiffusionPipeline.download(model, revision=revision, variant=variant, use_safetensors=True,
                                                 local_files_only=offline()))
    except Exception as exc:  # hub errors: not cached offline, unknown id, no network, gated model, no safetensors
        if offline():
            raise PretrainedModelError(
                f"hub model {model!r} is not in the local Hugging Face cache and offline mode is on (HF_HUB_OFFLINE=1), so it "
                f"cannot be downloaded; run once with internet (unset HF_HUB_OFFLINE), or pass --set model= a local pipeline "
                "folder") from exc
        raise PretrainedModelError(
            f"cannot get hub model {model!r} (revision {revision or 'main'}): {type(exc).__name__}: {exc}. Check the id and "
            "the network; for gated models run `huggingface-cli login`; or pass --set model= a local pipeline folder") from exc
    commit = folder.name if folder.parent.name == "snapshots" else None
    return ResolvedModel(model, str(folder), revision, commit, folder_fingerprint(folder))


def torch_dtype(precision: str, device: torch.device) -> torch.dtype:
    """auto: fp16 on GPU (Stable Diffusion 1.x weights are published for it), fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return torch.float32
    if precision in ("auto", "fp16"):
        if device.type != "cuda":
            raise ConfigError("precision fp16 needs a GPU (CPU kernels for half precision are missing or slow); use fp32 or bf16")
        return torch.float16
    if device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("precision bf16 on a CPU without AVX-512 runs ~10x slower than fp32; using fp32")
        return torch.float32
    return torch.bfloat16


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


@contextlib.contextmanager
def explain_out_of_memory(what: str) -> Iterator[None]:
    """Turn an out-of-memory error into one that says which settings need less memory."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not (_out_of_memory(exc) or isinstance(exc, MemoryError)):
            raise
        raise PretrainedModelError(
            f"{what} ran out of memory ({str(exc).splitlines()[0][:120]}); try, in this order: a smaller --batch-size or "
            "--set generation_batch_size=1, --set precision=fp16 (GPU), --set attention_slicing=true, --set cpu_offload=true, "
            "a smaller --set size=") from exc


def set_scheduler(pipe: Any, kind: str) -> None:
    """Swap the sampler, keeping the model's noise schedule (betas, prediction type) from its saved config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler

    config = pipe.scheduler.config
    if kind == "dpm++":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    elif kind == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(config)
    elif kind == "euler-a":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(config)


def load_pipeline(resolved: ResolvedModel, cfg: StableDiffusionConfig, device: torch.device) -> Any:
    """A text-to-image diffusers pipeline from `resolved.folder`, placed and configured as `cfg` says
    (img2img generators derive theirs from it with AutoPipelineForImage2Image.from_pipe: the weights are shared)."""
    require_pretrained_extra("Stable Diffusion generators")
    from diffusers import AutoPipelineForText2Image

    dtype = torch_dtype(cfg.precision, device)
    try:
        # safety_checker=None: the checker blacks out images it flags; for training data we keep what was generated
        pipe = AutoPipelineForText2Image.from_pretrained(resolved.folder, dtype=dtype, use_safetensors=True,
                                                         variant=cfg.variant, local_files_only=True, safety_checker=None,
                                                         requires_safety_checker=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PretrainedModelError(
            f"cannot load a text-to-image pipeline from {resolved.model} ({resolved.folder}): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}. synthaug loads safetensors weights only (pickle .bin/.ckpt files are refused; "
            "convert them with diffusers' scripts), and the folder must be a complete diffusers pipeline") from exc
    if cfg.scheduler != "model":
        set_scheduler(pipe, cfg.scheduler)
    with explain_out_of_memory(f"moving {resolved.model} to {device}"):
        if cfg.cpu_offload:
            if device.type != "cuda":
                raise ConfigError("cpu_offload moves sub-models between CPU and GPU and needs a GPU (device cuda)")
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    if cfg.attention_slicing:
        pipe.enable_attention_slicing()
    pipe.set_progress_bar_config(disable=True)  # synthaug shows one bar over all images instead
    return pipe


# --- prompts ---------------------------------------------------------------------------------------------

def resolve_prompts(templates: list[str], prompt_file: str | None, class_names: list[str]) -> dict[str, list[str]]:
    """Prompt templates per class: `templates` for every class, replaced by the prompt file's entries for the
    classes it names. An unknown class name in the file is an error (a typo would silently fall back otherwise)."""
    import yaml

    per_class = {name: list(templates) for name in class_names}
    if not prompt_file:
        return per_class
    path = Path(prompt_file)
    if not path.is_file():
        raise ConfigError(f"prompt_file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"prompt file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"prompt file {path} must map class names to a prompt or a list of prompts")
    unknown = [str(k) for k in data if str(k) not in class_names]
    if unknown:
        raise ConfigError(f"prompt file {path} names unknown class(es) {unknown}; the data's classes are {class_names}: "
                          "fix the names or remove those entries")
    for name, value in data.items():
        prompts = [value] if isinstance(value, str) else value
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ConfigError(f"prompt file {path}: class {name!r} needs a prompt or a non-empty list of prompts, got {value!r}")
        per_class[str(name)] = prompts
    return per_class


def fill_prompt(template: str, name: str) -> str:
    """'{name}' -> `name` (str.format is not used: prompts may contain other braces)."""
    return template.replace("{name}", name)


# --- seeds and images --------------------------------------------------------------------------------------

def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image `index` of a call with `seed`: every per-image choice (noise seed, prompt,
    strength, style) comes from it, so an image does not depend on the batch it was generated in."""
    return np.random.default_rng([seed, index])


def native_size(pipe: Any) -> int:
    """A diffusers pipeline's default resolution: what its own __call__ uses when no height / width is given."""
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def generation_size(image_shape: tuple[int, int, int], size: int) -> tuple[int, int]:
    """(height, width) with the dataset's aspect ratio, the longer side `size`, both multiples of 8."""
    _, h, w = image_shape
    scale = size / max(h, w)
    return max(8, round(h * scale / 8) * 8), max(8, round(w * scale / 8) * 8)


def to_rgb_float(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [N, 1|3, H, W] -> float RGB in [0, 1] at `size`, resized with antialiasing (bicubic)."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    return x


def to_dataset_images(rgb: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """float RGB [N, 3, h, w] in [0, 1] -> uint8 of the dataset's shape: resized with antialiasing, and converted to
    grey with the ITU-R 601 luma weights (as PIL's convert('L')) for 1-channel data."""
    c, h, w = image_shape
    x = rgb.float()
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    if c == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


# --- the shared generator ---------------------------------------------------------------------------------

@dataclass
class ImagePlan:
    """What one output image is made with."""

    noise_seed: int  # seeds the image's own torch.Generator (initial latents, img2img noise)
    prompt: str
    strength: float | None = None  # img2img only: how much of the source image is noised away (1 = all)


class StableDiffusionGenerator(Generator):
    """The part of `sd-text` and `sd-img2img` that is the same: a lazily loaded pipeline, prompts per class, one
    seed per image, batching with a progress bar, provenance in generator.json."""

    Config: ClassVar[type[GeneratorConfig]] = StableDiffusionConfig
    cfg: StableDiffusionConfig

    def __init__(self, cfg: StableDiffusionConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        self.device = resolve_device(cfg.device)
        self.class_prompts: dict[str, list[str]] | None = None  # resolved at fit, stored in generator.json
        self.model_info: dict[str, Any] | None = None  # ResolvedModel.as_dict() of the model used at fit
        self._pipe: Any = None

    # -- model ------------------------------------------------------------------------------------------
    def resolved_model(self) -> ResolvedModel:
        resolved = resolve_model(self.cfg.model, self.cfg.revision, self.cfg.variant)
        if self.model_info and self.model_info.get("fingerprint") != resolved.fingerprint:
            log.warning("%s: model %s differs from the one used at fit (fingerprint %s, now %s)", self.name, self.cfg.model,
                        self.model_info.get("fingerprint"), resolved.fingerprint)
        return resolved

    def text_pipeline(self) -> Any:
        """The loaded text-to-image pipeline (cached on the generator). The first load records which model it was
        (model_info, saved in generator.json); later loads warn if the model has changed since."""
        if self._pipe is None:
            resolved = self.resolved_model()
            start = time.perf_counter()
            self._pipe = load_pipeline(resolved, self.cfg, self.device)
            self.prepare_pipeline(self._pipe)
            if self.model_info is None:
                self.model_info = resolved.as_dict()
            log.info("loaded %s in %.1f s", resolved.model, time.perf_counter() - start)
        return self._pipe

    def generation_side(self) -> int:
        """Pixels of the longer side to generate at: `size`, or the pipeline's native resolution (a 512-px SD 1.5 asked
        for 1024 px draws repeated objects; a 64-px test pipeline asked for 512 px takes minutes per image on a CPU)."""
        return self.cfg.size or native_size(self.text_pipeline())

    def prepare_pipeline(self, pipe: Any) -> None:
        """Hook run once after loading (sd-img2img loads its learned class tokens here)."""

    def override(self, settings: dict[str, Any]) -> None:
        before = {k: getattr(self.cfg, k) for k in PIPELINE_FIELDS}
        super().override(settings)
        self.device = resolve_device(self.cfg.device)
        if any(getattr(self.cfg, k) != v for k, v in before.items()):
            self._pipe = None  # reload with the new model / placement at the next sample
        if {"prompts", "prompt_file"} & set(settings):
            self.class_prompts = None  # resolved again from the new templates / file at the next sample

    # -- prompts and plans ------------------------------------------------------------------------------
    def prompt_name(self, class_name: str) -> str:
        """What {name} in a template becomes: the class name with underscores as spaces (golden_retriever -> golden
        retriever); sd-img2img with textual inversion: the class's learned token."""
        return class_name.replace("_", " ")

    def prompts_of(self, class_name: str) -> list[str]:
        if self.class_prompts is None:
            self.class_prompts = resolve_prompts(self.cfg.prompts, self.cfg.prompt_file, self.class_names)
        return [fill_prompt(t, self.prompt_name(class_name)) for t in self.class_prompts[class_name]]

    def plan(self, labels: torch.Tensor, seed: int) -> list[ImagePlan]:
        """One ImagePlan per label, each from the image's own random stream (see image_rng)."""
        return [self.plan_image(image_rng(seed, i), label) for i, label in enumerate(labels.tolist())]

    def plan_image(self, rng: np.random.Generator, label: int) -> ImagePlan:
        """Draw one image's settings; subclasses draw more from the same stream after these."""
        noise_seed = int(rng.integers(2**63 - 1))
        prompts = self.prompts_of(self.class_names[label])
        return ImagePlan(noise_seed, prompts[int(rng.integers(len(prompts)))])

    def sample_details(self, labels: torch.Tensor, seed: int, with_sources: bool = False) -> dict[str, list[Any]]:
        plans = self.plan(self.check_labels(labels), seed)
        details: dict[str, list[Any]] = {"prompt": [p.prompt for p in plans]}
        if plans and plans[0].strength is not None:
            details["strength"] = [p.strength for p in plans]
        return details

    def check_data(self, data: ImageDataset) -> None:
        if tuple(data.images.shape[1:]) != self.image_shape or data.class_names != self.class_names:
            raise ValueError(f"{self.name} was built for images {self.image_shape} of classes {self.class_names}, the data are "
                             f"{tuple(data.images.shape[1:])} of {data.class_names}")
        if len(data) == 0:
            raise ValueError(f"cannot fit {self.name} on an empty dataset")

    def pipeline_call_kwargs(self, plans: list[ImagePlan]) -> dict[str, Any]:
        """Arguments every pipeline call shares: prompts, guidance, steps, and one torch.Generator per image (on the
        CPU, so an image is the same whichever device generates it, up to floating-point rounding)."""
        kwargs: dict[str, Any] = {
            "prompt": [p.prompt for p in plans], "guidance_scale": self.cfg.guidance_scale,
            "num_inference_steps": self.cfg.sampling_steps, "output_type": "pt",
            "generator": [torch.Generator().manual_seed(p.noise_seed) for p in plans],
        }
        if self.cfg.negative_prompt:
            kwargs["negative_prompt"] = [self.cfg.negative_prompt] * len(plans)
        return kwargs

    def batches(self, n: int, batch_size: int) -> Iterator[slice]:
        from tqdm.auto import tqdm

        step = max(1, min(batch_size, self.cfg.generation_batch_size))
        with tqdm(total=n, desc=self.name, unit="img", leave=False, disable=not self.cfg.progress) as bar:
            for start in range(0, n, step):
                yield slice(start, min(start + step, n))
                bar.update(min(step, n - start))

    # -- fit, save, load --------------------------------------------------------------------------------
    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: Any = None) -> dict[str, Any]:
        """Nothing is trained: resolve the prompts (checking the prompt file) and load the model, so that a wrong
        model or prompt file fails here rather than in `synth make`."""
        refuse_unlabelled(self, unlabelled)
        self.check_data(data)
        start = time.perf_counter()
        self.class_prompts = resolve_prompts(self.cfg.prompts, self.cfg.prompt_file, self.class_names)
        self._pipe, self.model_info = None, None  # (re)load: this fit records the model it used
        self.text_pipeline()
        if run is not None:
            run.log(f"{self.name}: model {self.model_info}; prompts {self.class_prompts}")
        return {"generator": self.name, "model": self.cfg.model, "commit": (self.model_info or {}).get("commit"),
                "load_seconds": time.perf_counter() - start}

    def provenance(self) -> dict[str, Any]:
        """What synthetic-set manifests record about the pretrained model."""
        return {"model": self.model_info or {"model": self.cfg.model, "revision": self.cfg.revision},
                "prompts": self.class_prompts, "negative_prompt": self.cfg.negative_prompt,
                "guidance_scale": self.cfg.guidance_scale, "sampling_steps": self.cfg.sampling_steps,
                "scheduler": self.cfg.scheduler, "size": self.cfg.size or (native_size(self._pipe) if self._pipe else None),
                "leakage_warning": LEAKAGE_WARNING}

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "pretrained": self.provenance()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "Generator":
        gen = super().load(directory, device=device)
        stored = read_spec(directory).get("pretrained", {})
        gen.class_prompts = stored.get("prompts")
        gen.model_info = stored.get("model") if isinstance(stored.get("model"), dict) and "folder" in stored["model"] else None
        return gen
