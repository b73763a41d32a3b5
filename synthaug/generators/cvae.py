"""Conditional convolutional VAE: the one-hot label joins the encoder's input and the decoder's latent.

Fast to train and stable (no adversary), but its samples are blurrier than a GAN's; the Stevens report
names it as future work. beta weights the KL term (beta < 1: sharper, less regular latent space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from synthaug.generators.base import GENERATORS, GeneratorConfig
from synthaug.generators.layers import SizePlan, eval_mode, seeded_init, size_plan
from synthaug.generators.loop import Batch, TrainableGenerator, to_uint8


@dataclass
class CVAEConfig(GeneratorConfig):
    lr: float = 1e-3  # learning rate (Adam)
    latent_dim: int = 16  # length of the latent code z
    width: int = 32  # channels after the encoder's first downsampling; doubled at each further one
    beta: float = 1.0  # weight of the KL term (1: the plain VAE bound)
    reconstruction: Literal["bce", "mse"] = "bce"  # bce: pixels as Bernoulli means (grey); mse: Gaussian
    temperature: float = 1.0  # std of the latent noise at sampling (< 1: more typical, less varied images)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.latent_dim < 1 or self.width < 1:
            raise ValueError(f"{name}: latent_dim and width must be >= 1, got {self.latent_dim}, {self.width}")
        if self.beta < 0:
            raise ValueError(f"{name}.beta must be >= 0, got {self.beta}")
        if self.reconstruction not in ("bce", "mse"):
            raise ValueError(f"{name}.reconstruction must be bce or mse, got {self.reconstruction!r}")
        if self.temperature <= 0:
            raise ValueError(f"{name}.temperature must be > 0, got {self.temperature}")


def label_planes(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, num_classes).to(like.dtype)[:, :, None, None].expand(-1, -1, *like.shape[2:])


class Encoder(nn.Module):
    """[image, label planes] -> [conv 4x4 /2 -> ReLU]* -> linear -> (mu, logvar)."""

    def __init__(self, channels: int, num_classes: int, plan: SizePlan, width: int, latent_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        c = channels + num_classes
        for i in range(plan.halvings):
            layers += [nn.Conv2d(c, width * 2 ** i, 4, 2, 1), nn.ReLU()]
            c = width * 2 ** i
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * plan.base_h * plan.base_w, 2 * latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(torch.cat([x, label_planes(y, self.num_classes, x)], dim=1))
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """[z, one-hot label] -> linear -> base grid -> [ConvTranspose 4x4 /2 -> ReLU]* -> conv3x3 (logits)."""

    def __init__(self, channels: int, num_classes: int, plan: SizePlan, width: int, latent_dim: int) -> None:
        super().__init__()
        n = plan.halvings
        widths = [width * 2 ** (n - 1 - i) for i in range(n)] + [width]  # mirror of the encoder
        self.num_classes, self.base = num_classes, (widths[0], plan.base_h, plan.base_w)
        self.fc = nn.Linear(latent_dim + num_classes, widths[0] * plan.base_h * plan.base_w)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1) for i in range(n))
        self.out = nn.Conv2d(widths[-1], channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1))).view(-1, *self.base)
        for up in self.ups:
            h = F.relu(up(h))
        return self.out(h)


@GENERATORS.register("cvae")
class CVAE(TrainableGenerator):
    """Conditional convolutional VAE (one-hot label on encoder input and decoder latent, beta-KL)."""

    name = "cvae"
    Config = CVAEConfig
    cfg: CVAEConfig

    def __init__(self, cfg: CVAEConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        c, h, w = self.image_shape
        plan = size_plan(h, w, who="cvae")
        with seeded_init(cfg.seed):
            self.encoder = Encoder(c, self.num_classes, plan, cfg.width, cfg.latent_dim)
            self.decoder = Decoder(c, self.num_classes, plan, cfg.width, cfg.latent_dim)
        self.encoder.to(self.device, memory_format=self.memory_format)
        self.decoder.to(self.device, memory_format=self.memory_format)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def setup_training(self) -> dict[str, torch.optim.Optimizer]:
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.opt = torch.optim.Adam(params, lr=self.cfg.lr)
        return {"opt": self.opt}

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Decoder output -> image in [-1, 1] (Bernoulli mean for bce, the value itself for mse)."""
        return torch.sigmoid(logits) * 2 - 1 if self.cfg.reconstruction == "bce" else logits.clamp(-1, 1)

    def losses(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Per-image reconstruction and KL (summed over pixels / latents, averaged over the batch).

        `eps` is the reparameterisation noise; None decodes the posterior mean (a deterministic check).
        """
        with self.autocast():
            mu, logvar = self.parallel("encoder")(x, y)
            mu, logvar = mu.float(), logvar.float()
            z = mu if eps is None else mu + eps * torch.exp(0.5 * logvar)
            logits = self.parallel("decoder")(z, y).float()
        if self.cfg.reconstruction == "bce":  # targets in [0, 1]
            recon = F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="sum") / len(x)
        else:
            recon = F.mse_loss(logits, x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return {"loss": recon + self.cfg.beta * kl, "recon": recon, "kl": kl}

    def train_step(self, next_batch: Callable[[], Batch], step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        x, y = next_batch()
        eps = torch.randn(len(x), self.cfg.latent_dim, generator=g, device=g.device).to(self.device)
        out = self.losses(x, y, eps)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.opt.step()
        return {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256,
               sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        self.check_sources(labels, sources)  # none taken: given any, a clear error
        return self.from_noise(self.sampling_noise(labels, seed), labels, batch_size)

    def sampling_noise(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        labels = self.check_labels(labels)
        z = torch.randn(len(labels), self.cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        return z * self.cfg.temperature

    @torch.no_grad()
    def from_noise(self, noise: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        out = [torch.empty((0, *self.image_shape), dtype=torch.uint8)]
        with eval_mode(self.decoder):
            for zb, yb in zip(noise.split(batch_size), labels.split(batch_size)):
                with self.autocast():
                    logits = self.decoder(zb.to(self.device), yb.to(self.device)).float()
                out.append(to_uint8(self.decode(logits)).cpu())
        return torch.cat(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        # The encoder is saved too: it is small and lets a loaded model reconstruct / embed real images.
        return {f"{name}.{k}": v for name, net in self.networks().items() for k, v in net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks().items():
            net.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if k.startswith(f"{name}.")})
