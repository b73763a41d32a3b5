"""style-transfer: each real image re-painted in the style of another image (the Stevens report's third dataset).

The content of a training image is kept and its textures and colours are taken from a style image: from a
folder of style images (`style_images`), or another training image (style randomisation, as in Jackson et
al. 2019). Both methods optimise the image's pixels against features of an ImageNet-trained VGG-19 (no
network is trained):
- `gatys` (Gatys et al. 2016): content = relu4_2 features of the source; style = Gram matrices of relu1_1 ..
  relu5_1 of the style image.
- `adain` (Huang & Belongie 2017's objective): content target = AdaIN(source, style) at relu4_1 (the source's
  features re-normalised to the style's channel means and deviations); style = those means and deviations at
  relu1_1 .. relu4_1. The paper trains a decoder to hit this target in one pass; optimising the pixels reaches the
  same target without decoder weights (slower, and nothing to download besides VGG).
The Stevens report used a TensorFlow-Hub network trained for arbitrary style transfer; this is the same idea
with torchvision's VGG-19. VGG weights come from torchvision's cache (downloaded once when online) or
`vgg_weights=FILE.safetensors`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthaug.data.base import ImageDataset
from synthaug.generators.base import GENERATORS, Generator, GeneratorConfig, read_spec, refuse_unlabelled
from synthaug.generators.sources import SourceImages, keep_sources
from synthaug.generators.stable_diffusion import (LEAKAGE_WARNING, PretrainedModelError, generation_size, image_rng, offline,
                                                  to_dataset_images, to_rgb_float)
from synthaug.data.folder import EXTENSIONS, read_image
from synthaug.runs import Run
from synthaug.utils import resolve_device

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1
VGG_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu4_2": 22, "relu5_1": 29}  # index in vgg19().features
METHOD_LAYERS = {
    "gatys": {"content": "relu4_2", "style": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]},
    "adain": {"content": "relu4_1", "style": ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]},
}
DEFAULT_STYLE_WEIGHT = {"gatys": 1e6, "adain": 10.0}  # Gatys with size-normalised Gram matrices (the PyTorch tutorial's); AdaIN's lambda
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class StyleTransferConfig(GeneratorConfig):
    """Settings of the style-transfer generator. Nothing is trained, so steps, batch_size, sample_every and
    snapshot_every of GeneratorConfig are unused; `lr` is the step size of the pixel optimisation."""

    method: Literal["adain", "gatys"] = "adain"  # optimisation target (see the module docstring)
    style_images: str | None = None  # folder of style images (any common format); None: other training images
    vgg_weights: str | None = None  # safetensors file of torchvision's VGG-19 weights; None: torchvision's cache
    iterations: int = 100  # Adam steps on the pixels of each image
    lr: float = 0.02  # Adam step size on pixels in [0, 1]
    content_weight: float = 1.0  # weight of the content loss
    style_weight: float | None = None  # weight of the style loss; None: 1e6 for gatys, 10 for adain
    alpha: float = 1.0  # adain: 0 keeps the source's features as content target, 1 takes the fully re-styled ones
    size: int = 128  # working size in pixels of the longer side: images are resized for VGG and back
    generation_batch_size: int = 16  # images optimised together (memory); the result does not depend on it

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.method not in METHOD_LAYERS:
            raise ValueError(f"{name}.method must be one of {sorted(METHOD_LAYERS)}, got {self.method!r}")
        if self.iterations < 1 or self.generation_batch_size < 1:
            raise ValueError(f"{name}: iterations and generation_batch_size must be >= 1")
        if self.content_weight < 0 or (self.style_weight is not None and self.style_weight < 0):
            raise ValueError(f"{name}: content_weight and style_weight must be >= 0")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"{name}.alpha must be in [0, 1], got {self.alpha}")
        if self.size < 32:
            raise ValueError(f"{name}.size must be >= 32 (VGG-19 halves it four times), got {self.size}")


# --- VGG-19 --------------------------------------------------------------------------------------------

def missing_weights_message(cache_file: Path) -> str:
    return (f"style-transfer needs ImageNet VGG-19 weights: none at {cache_file} (torchvision's cache). With internet, "
            f"torchvision puts them there itself (python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"); "
            "without, copy vgg19-dcbb9e9d.pth there, or pass --set vgg_weights=FILE.safetensors (torchvision's VGG-19 state dict)")


def load_vgg_state(vgg_weights: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision VGG-19 `features` weights (keys '0.weight', ...) and where they came from."""
    if vgg_weights:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(vgg_weights)
        if not path.is_file():
            raise PretrainedModelError(f"vgg_weights {path} does not exist")
        if path.suffix != ".safetensors":
            raise PretrainedModelError(f"vgg_weights {path}: only .safetensors files are read (no pickle); convert with "
                                       "safetensors.torch.save_file(torch.load(FILE, weights_only=True), 'vgg19.safetensors')")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise PretrainedModelError(f"cannot read vgg_weights {path}: {exc}") from exc
        source = str(path.resolve())
    else:
        cache_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_URL).name
        if not cache_file.is_file() and offline():
            raise PretrainedModelError(missing_weights_message(cache_file))
        try:
            # weights_only=True: PyTorch's restricted unpickler, which refuses anything but tensors and containers
            state = torch.hub.load_state_dict_from_url(VGG19_URL, progress=True, check_hash=True, weights_only=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise PretrainedModelError(missing_weights_message(cache_file) + f" ({type(exc).__name__}: {exc})") from exc
        source = str(cache_file)
    return {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()}, source


def vgg19_features() -> nn.Sequential:
    """torchvision's VGG-19 `features` (the convolutional part) alone: building the whole vgg19() would also
    initialise its 120M-parameter classifier, which style transfer never uses."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["E"])


class VGGFeatures(nn.Module):
    """VGG-19's convolutional layers up to the deepest one a method uses; returns the named ReLU outputs."""

    def __init__(self, state: dict[str, torch.Tensor], layers: list[str]) -> None:
        super().__init__()
        self.layers = {VGG_LAYERS[name]: name for name in layers}
        body = vgg19_features()[: max(self.layers) + 1]
        for m in body:
            if isinstance(m, nn.ReLU):
                m.inplace = False  # the features we keep must not be overwritten by the next layer
        wanted = body.state_dict()
        missing = sorted(set(wanted) - set(state), key=lambda k: int(k.split(".")[0]))
        if missing:
            raise PretrainedModelError(f"the VGG-19 weights lack {missing[:4]}{' ...' if len(missing) > 4 else ''}; "
                                       "vgg_weights must be torchvision's vgg19 state dict (features.N.weight / .bias)")
        body.load_state_dict({k: state[k].float() for k in wanted})
        self.body = body.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (rgb - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.layers:
                out[self.layers[i]] = x
        return out


# --- the losses (per image, summed over the batch, so an image's result does not depend on its batch) --------

def gram(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, C] Gram matrices normalised by C*H*W."""
    n, c, h, w = f.shape
    flat = f.flatten(2)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def channel_stats(f: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation ([N, C, 1, 1] each)."""
    mean = f.mean((2, 3), keepdim=True)
    std = (f.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation: content features with the style features' channel means and deviations."""
    c_mean, c_std = channel_stats(content)
    s_mean, s_std = channel_stats(style)
    return (content - c_mean) / c_std * s_std + s_mean


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1).sum()


@dataclass
class StyleTargets:
    content: torch.Tensor  # target features at the content layer
    style: dict[str, Any]  # per style layer: a Gram matrix (gatys) or (mean, std) (adain)


def style_targets(vgg: VGGFeatures, content: torch.Tensor, style: torch.Tensor, method: str, alpha: float) -> StyleTargets:
    layers = METHOD_LAYERS[method]
    with torch.no_grad():
        fc, fs = vgg(content), vgg(style)
        if method == "gatys":
            return StyleTargets(fc[layers["content"]], {name: gram(fs[name]) for name in layers["style"]})
        target = adain(fc[layers["content"]], fs[layers["content"]])
        target = alpha * target + (1 - alpha) * fc[layers["content"]]
        return StyleTargets(target, {name: channel_stats(fs[name]) for name in layers["style"]})


def style_losses(feats: dict[str, torch.Tensor], targets: StyleTargets, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss, style loss) of features `feats` of the image being optimised."""
    layers = METHOD_LAYERS[method]
    content = per_image_mse(feats[layers["content"]], targets.content)
    style = torch.zeros((), device=content.device)
    for name in layers["style"]:
        if method == "gatys":
            style = style + per_image_mse(gram(feats[name]), targets.style[name])
        else:
            mean, std = channel_stats(feats[name])
            style = style + per_image_mse(mean, targets.style[name][0]) + per_image_mse(std, targets.style[name][1])
    return content, style


def stylize(vgg: VGGFeatures, content: torch.Tensor, style: torch.Tensor, method: str = "adain", iterations: int = 100,
            lr: float = 0.02, content_weight: float = 1.0, style_weight: float | None = None, alpha: float = 1.0,
            ) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Optimise the pixels of `content` (float RGB [N, 3, H, W] in [0, 1], the starting point) toward the style of
    `style` (same shape); returns the images and each iteration's (content, style) loss before its step."""
    weight = DEFAULT_STYLE_WEIGHT[method] if style_weight is None else style_weight
    targets = style_targets(vgg, content, style, method, alpha)
    x = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    history = []
    for _ in range(iterations):
        content_loss, style_loss = style_losses(vgg(x), targets, method)
        loss = content_weight * content_loss + weight * style_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        history.append({"content": content_loss.item(), "style": style_loss.item()})
    return x.detach(), history


# --- the generator --------------------------------------------------------------------------------------------

@GENERATORS.register("style-transfer")
class StyleTransfer(Generator):
    """Neural style transfer of each real image (Gatys or AdaIN objective on VGG-19), styles from a folder or other training images."""

    name = "style-transfer"
    Config = StyleTransferConfig
    cfg: StyleTransferConfig
    takes_sources = "required"

    def __init__(self, cfg: StyleTransferConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        self.device = resolve_device(cfg.device)
        self.work_size = generation_size(self.image_shape, cfg.size)
        self.sources: SourceImages | None = None  # training images kept at fit (content, and style when no folder is given)
        self.styles: torch.Tensor | None = None  # uint8 [S, 3, h, w] style images at the working size (from style_images)
        self.style_names: list[str] = []  # their file names
        self.vgg_source: str | None = None
        self._vgg: VGGFeatures | None = None

    def vgg(self) -> VGGFeatures:
        if self._vgg is None:
            state, self.vgg_source = load_vgg_state(self.cfg.vgg_weights)
            self._vgg = VGGFeatures(state, [METHOD_LAYERS[self.cfg.method]["content"], *METHOD_LAYERS[self.cfg.method]["style"]])
            self._vgg.to(self.device)
        return self._vgg

    def override(self, settings: dict[str, Any]) -> None:
        before = (self.cfg.method, self.cfg.vgg_weights, self.cfg.device)
        super().override(settings)
        self.device = resolve_device(self.cfg.device)
        self.work_size = generation_size(self.image_shape, self.cfg.size)
        if (self.cfg.method, self.cfg.vgg_weights, self.cfg.device) != before:
            self._vgg = None

    # -- which style each image gets ---------------------------------------------------------------------
    def style_pool(self) -> tuple[torch.Tensor, list[str]]:
        """The style images (uint8) and their names: the folder's, or the training images ('train:<index>')."""
        if self.styles is not None:
            return self.styles, self.style_names
        if self.sources is None:
            raise ValueError("style-transfer has no style images: fit it first (style_images, or its training images)")
        return self.sources.images, [f"train:{i}" for i in self.sources.index.tolist()]

    def style_choice(self, n: int, seed: int) -> list[int]:
        pool_size = len(self.style_pool()[1])
        return [int(image_rng(seed, i).integers(pool_size)) for i in range(n)]

    def sample_details(self, labels: torch.Tensor, seed: int, with_sources: bool = False) -> dict[str, list[Any]]:
        names = self.style_pool()[1]
        return {"style": [names[k] for k in self.style_choice(len(labels), seed)]}

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256, sources: torch.Tensor | None = None) -> torch.Tensor:
        from tqdm.auto import tqdm

        labels = self.check_labels(labels)
        sources = self.check_sources(labels, sources)
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        if len(labels) == 0:
            return out
        pool, _ = self.style_pool()
        choice = torch.tensor(self.style_choice(len(labels), seed))
        vgg, cfg = self.vgg(), self.cfg
        step = max(1, min(batch_size, cfg.generation_batch_size))
        with tqdm(total=len(labels), desc=self.name, unit="img", leave=False, disable=not cfg.progress) as bar:
            for start in range(0, len(labels), step):
                part = slice(start, min(start + step, len(labels)))
                content = to_rgb_float(sources[part], self.work_size).to(self.device)
                style = to_rgb_float(pool[choice[part]], self.work_size).to(self.device)
                images, _ = stylize(vgg, content, style, cfg.method, cfg.iterations, cfg.lr, cfg.content_weight,
                                    cfg.style_weight, cfg.alpha)
                out[part] = to_dataset_images(images, self.image_shape)
                bar.update(part.stop - part.start)
        return out

    def source_set(self) -> SourceImages | None:
        return self.sources

    # -- fit, save, load ------------------------------------------------------------------------------------------
    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: Any = None) -> dict[str, Any]:
        """Nothing is trained: check the VGG weights, read the style folder, keep the training images."""
        refuse_unlabelled(self, unlabelled)
        if tuple(data.images.shape[1:]) != self.image_shape or data.class_names != self.class_names or len(data) == 0:
            raise ValueError(f"{self.name} was built for images {self.image_shape} of classes {self.class_names}, the data are "
                             f"{len(data)} images {tuple(data.images.shape[1:])} of {data.class_names}")
        start = time.perf_counter()
        self.vgg()
        self.sources = keep_sources(data, None, self.cfg.seed)
        if self.cfg.style_images:
            self.styles, self.style_names = read_style_folder(Path(self.cfg.style_images), self.work_size)
        if run is not None:
            run.log(f"style-transfer: VGG-19 weights {self.vgg_source}; {len(self.style_pool()[1])} style images")
        return {"generator": self.name, "vgg_weights": self.vgg_source, "style_images": len(self.style_pool()[1]),
                "sources": len(self.sources), "seconds": time.perf_counter() - start}

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "pretrained": {"model": {"model": "torchvision vgg19 IMAGENET1K_V1", "weights": self.vgg_source},
                                                  "method": self.cfg.method, "style_images": self.style_names or "training images",
                                                  "leakage_warning": LEAKAGE_WARNING}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        if self.sources is not None:
            state.update({"sources.images": self.sources.images, "sources.labels": self.sources.labels,
                          "sources.index": self.sources.index})
        if self.styles is not None:
            state["styles"] = self.styles
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "sources.images" in state:
            self.sources = SourceImages(state["sources.images"], state["sources.labels"], state["sources.index"])
        self.styles = state.get("styles")

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Generator:
        gen = super().load(directory, device=device)
        assert isinstance(gen, StyleTransfer)
        names = read_spec(directory).get("pretrained", {}).get("style_images")
        gen.style_names = names if isinstance(names, list) else []
        return gen


def read_style_folder(folder: Path, size: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
    """Every image in `folder` (not recursive) as uint8 RGB at `size`, and the file names."""
    if not folder.is_dir():
        raise PretrainedModelError(f"style_images folder {folder} does not exist")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS and not f.name.startswith("."))
    if not files:
        raise PretrainedModelError(f"style_images folder {folder} holds no images ({', '.join(sorted(EXTENSIONS))})")
    images = [torch.from_numpy(np.ascontiguousarray(read_image(f, max(size), 3))) for f in files]
    styles = F.interpolate(torch.stack(images).float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return styles.round().clamp(0, 255).to(torch.uint8), [f.name for f in files]
