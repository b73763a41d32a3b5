"""Class-conditional DCGAN family: 100-dim noise, conditional batch norm in G, projection (or concat) D.

Options cover what the issue's studies compare: BCE vs hinge loss, Adam vs RMSProp (the X-ray study
found RMSProp steadier), spectral norm, DiffAugment for small data, an EMA of the generator for sampling,
and health checks that warn (or stop) when the discriminator wins outright or diversity collapses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from synthaug.generators.base import GENERATORS, GeneratorConfig
from synthaug.generators.diffaugment import DIFFAUGMENT_OPS, diff_augment
from synthaug.generators.health import HealthMonitor
from synthaug.generators.layers import (EMA, ConditionalBatchNorm2d, SizePlan, eval_mode, refresh_batch_norm,
                                        seeded_init, size_plan)
from synthaug.generators.loop import Batch, TrainableGenerator, to_uint8

LABEL_EMBED_DIM = 32  # class embedding concatenated to the noise at G's input (CBN also conditions every layer)


@dataclass
class CGANConfig(GeneratorConfig):
    noise_dim: int = 100  # length of the noise vector z (100 as in the X-ray study)
    g_width: int = 32  # generator channels at full resolution; doubled at each coarser level
    d_width: int = 32  # discriminator channels after its first downsampling; doubled at each further one
    d_depth: int = 1  # conv layers per discriminator scale: 1 = DCGAN (4x4 stride 2 only); 2 adds a 3x3 conv
    # before each downsampling (SNGAN's "standard CNN" D), a stronger critic for little extra time since G dominates
    loss: Literal["bce", "hinge"] = "hinge"  # bce: non-saturating GAN loss; hinge: as in SNGAN / BigGAN
    optimizer: Literal["adam", "rmsprop"] = "adam"  # for both networks
    d_lr: float | None = None  # discriminator learning rate (None: same as lr)
    beta1: float = 0.5  # Adam first-moment decay
    beta2: float = 0.999  # Adam second-moment decay
    d_steps: int = 1  # discriminator updates per generator update (each on a fresh real batch)
    spectral_norm: bool = True  # spectral normalisation on every discriminator layer
    d_conditioning: Literal["projection", "concat"] = "projection"  # projection D, or label planes as input channels
    diffaugment: list[str] = field(default_factory=list)  # DiffAugment ops: translation, cutout, color
    ema_decay: float = 0.999  # EMA of generator weights, used for sampling; 0 disables
    standing_stats: int = 20  # before sampling, re-estimate the sampling G's batch-norm statistics from this many
    # batches of 256 noise vectors (BigGAN's standing statistics); else the EMA G uses statistics copied from G
    noise_scale: float = 1.0  # sampling only: z ~ N(0, noise_scale^2). Below 1 truncates (typical, less varied images);
    # above 1 is GaFi's "expansion trick" (more varied, more atypical images: coverage, which is what CAS lacks)
    d_keep: float = 1.0  # sampling only: draw n / d_keep candidates per class and keep the n that the GAN's own
    # discriminator scores highest (rejection sampling in the spirit of Azadi et al. 2019, as a per-class top-k;
    # no real labels involved, unlike the confidence filter). 1 keeps every sample
    stop_on_unhealthy: bool = False  # stop and restore the last checkpoint when a health check fires
    d_win_loss: float = 0.05  # discriminator loss below which D counts as winning outright in a log window
    d_win_windows: int = 10  # consecutive winning log windows before warning (0: check off)
    diversity_drop: float = 0.5  # warn when a class's sample diversity falls below this share of its best

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if min(self.noise_dim, self.g_width, self.d_width, self.d_steps, self.d_depth) < 1:
            raise ValueError(f"{name}: noise_dim, g_width, d_width, d_depth and d_steps must be >= 1")
        if self.loss not in ("bce", "hinge"):
            raise ValueError(f"{name}.loss must be bce or hinge, got {self.loss!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"{name}.optimizer must be adam or rmsprop, got {self.optimizer!r}")
        if self.d_conditioning not in ("projection", "concat"):
            raise ValueError(f"{name}.d_conditioning must be projection or concat, got {self.d_conditioning!r}")
        if self.d_lr is not None and self.d_lr <= 0:
            raise ValueError(f"{name}.d_lr must be > 0, got {self.d_lr}")
        unknown = [op for op in self.diffaugment if op not in DIFFAUGMENT_OPS]
        if unknown:
            raise ValueError(f"{name}.diffaugment: unknown op(s) {unknown}; choose from {', '.join(DIFFAUGMENT_OPS)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"{name}.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise ValueError(f"{name}.beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.standing_stats < 0:
            raise ValueError(f"{name}.standing_stats must be >= 0, got {self.standing_stats}")
        if not self.noise_scale > 0:
            raise ValueError(f"{name}.noise_scale must be > 0, got {self.noise_scale}")
        if not 0 < self.d_keep <= 1:
            raise ValueError(f"{name}.d_keep must be in (0, 1], got {self.d_keep}")
        if not 0 < self.diversity_drop < 1:
            raise ValueError(f"{name}.diversity_drop must be in (0, 1), got {self.diversity_drop}")


class CondGenerator(nn.Module):
    """z + class embedding -> linear -> base grid -> [ConvTranspose 4x4 /2 -> CBN -> ReLU]* -> conv3x3 -> tanh."""

    def __init__(self, noise_dim: int, num_classes: int, channels: int, plan: SizePlan, width: int) -> None:
        super().__init__()
        n = plan.halvings
        widths = [width * 2 ** (n - i) for i in range(n + 1)]  # e.g. 28x28, width 32: 128@7, 64@14, 32@28
        self.base = (widths[0], plan.base_h, plan.base_w)
        self.embed = nn.Embedding(num_classes, LABEL_EMBED_DIM)
        self.fc = nn.Linear(noise_dim + LABEL_EMBED_DIM, widths[0] * plan.base_h * plan.base_w, bias=False)
        self.bn0 = ConditionalBatchNorm2d(widths[0], num_classes)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=False) for i in range(n))
        self.bns = nn.ModuleList(ConditionalBatchNorm2d(widths[i + 1], num_classes) for i in range(n))
        self.out = nn.Conv2d(widths[-1], channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1)).view(-1, *self.base)
        h = F.relu(self.bn0(h, y))
        for up, bn in zip(self.ups, self.bns):
            h = F.relu(bn(up(h), y))
        return torch.tanh(self.out(h))


class CondDiscriminator(nn.Module):
    """[(conv 3x3 -> LeakyReLU)* conv 4x4 /2 -> LeakyReLU]* -> conv3x3 -> sum-pool -> linear (+ projection <embed(y), h>)."""

    def __init__(self, channels: int, num_classes: int, plan: SizePlan, width: int, spectral_norm: bool,
                 conditioning: str, depth: int = 1) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.num_classes, self.conditioning = num_classes, conditioning
        layers: list[nn.Module] = []
        c = channels + (num_classes if conditioning == "concat" else 0)
        for i in range(plan.halvings):
            for _ in range(depth - 1):  # same-resolution 3x3 convs at the input's width (the first: width // 2)
                c_mid = max(width * 2 ** i // 2, 1)
                layers += [sn(nn.Conv2d(c, c_mid, 3, 1, 1)), nn.LeakyReLU(0.2)]
                c = c_mid
            layers += [sn(nn.Conv2d(c, width * 2 ** i, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = width * 2 ** i
        layers += [sn(nn.Conv2d(c, 2 * c, 3, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.linear = sn(nn.Linear(2 * c, 1))
        self.embed = sn(nn.Embedding(num_classes, 2 * c)) if conditioning == "projection" else None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "concat":
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], dim=1)
        h = self.body(x).sum(dim=(2, 3))
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()  # non-saturating: maximise log D(G(z))


@GENERATORS.register("cgan")
class CGAN(TrainableGenerator):
    """Class-conditional DCGAN (projection D, spectral norm, DiffAugment, EMA, health checks)."""

    name = "cgan"
    Config = CGANConfig
    cfg: CGANConfig

    def __init__(self, cfg: CGANConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        c, h, w = self.image_shape
        plan = size_plan(h, w, who="cgan")
        with seeded_init(cfg.seed):
            self.G = CondGenerator(cfg.noise_dim, self.num_classes, c, plan, cfg.g_width)
            self.D = CondDiscriminator(c, self.num_classes, plan, cfg.d_width, cfg.spectral_norm, cfg.d_conditioning,
                                       cfg.d_depth)
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        self.ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self._stats_fresh = False  # standing statistics computed for the current sampling weights
        self._has_d = True  # False once loaded from a folder saved without D (d_keep then cannot work)

    def sampling_network(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.G

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.G, "D": self.D}
        if self.ema is not None:
            nets["G_ema"] = self.ema.model
        return nets

    def setup_training(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        d_lr = cfg.d_lr if cfg.d_lr is not None else cfg.lr
        if cfg.optimizer == "adam":
            make = lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))  # noqa: E731
        else:  # alpha 0.9 is Keras' RMSprop default, which the X-ray study used
            make = lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.9)  # noqa: E731
        self.opt_g, self.opt_d = make(self.G.parameters(), cfg.lr), make(self.D.parameters(), d_lr)
        self.G.train()
        self.D.train()
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return diff_augment(x, self.cfg.diffaugment, g) if self.cfg.diffaugment else x

    def noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.cfg.noise_dim, generator=g, device=g.device).to(self.device)

    def d_step(self, real: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One discriminator update on a real batch and as many fakes of the same classes."""
        with torch.no_grad(), self.autocast():
            fake = self.G(self.noise(len(y), g), y).float()
        x = self.augment(torch.cat([real, fake]), g)  # DiffAugment: real and fake alike
        with self.autocast():
            logits = self.parallel("D")(x, torch.cat([y, y])).float()
        real_logits, fake_logits = logits.chunk(2)
        loss = discriminator_loss(self.cfg.loss, real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

    def g_step(self, y: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One generator update through the (frozen) discriminator, DiffAugment included."""
        self.D.requires_grad_(False)  # D's weight gradients are not needed here
        with self.autocast():
            fake = self.parallel("G")(self.noise(len(y), g), y)
            logits = self.D(self.augment(fake, g), y).float()
        loss = generator_loss(self.cfg.loss, logits)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return {"g_loss": loss.detach()}

    def train_step(self, next_batch: Callable[[], Batch], step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        for _ in range(self.cfg.d_steps):
            real, y = next_batch()
            d_out = self.d_step(real, y, g)
        g_out = self.g_step(y, g)
        if self.ema is not None:
            self.ema.update(self.G, step)
        self.weights_changed()
        return {**d_out, **g_out}

    def weights_changed(self) -> None:
        self._stats_fresh = False

    def override(self, settings: dict[str, Any]) -> None:
        super().override(settings)
        self.weights_changed()  # e.g. another standing_stats count: recompute before the next sample

    def health_monitor(self) -> HealthMonitor:
        return HealthMonitor(self.cfg.d_win_loss, self.cfg.d_win_windows, self.cfg.diversity_drop, self.class_names)

    @property
    def stop_on_unhealthy(self) -> bool:
        return self.cfg.stop_on_unhealthy

    def standing_statistics(self) -> None:
        """Refresh the sampling G's batch-norm statistics (fixed noise and balanced labels: deterministic)."""
        if self.cfg.standing_stats == 0 or self._stats_fresh:
            return
        g, n = torch.Generator().manual_seed(self.cfg.seed + 77), 256
        labels = torch.arange(n) % self.num_classes

        def batches():
            for _ in range(self.cfg.standing_stats):
                z = torch.randn(n, self.cfg.noise_dim, generator=g)
                yield z.to(self.device), labels.to(self.device)

        with self.autocast():
            refresh_batch_norm(self.sampling_network(), batches())
        self._stats_fresh = True

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256,
               sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        self.check_sources(labels, sources)  # none taken: given any, a clear error
        if self.cfg.d_keep == 1:
            return self.from_noise(self.sampling_noise(labels, seed), labels, batch_size)
        if not self._has_d:
            raise ValueError("d_keep < 1 ranks samples with the discriminator, but this generator was saved without it "
                             "(runs saved before d_keep existed keep D only in their checkpoint.safetensors)")
        g = torch.Generator().manual_seed(seed)
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        for c in labels.unique().tolist():  # classes in ascending order, each from the same noise stream: deterministic
            where = torch.nonzero(labels == c).flatten()
            candidates = torch.full((math.ceil(len(where) / self.cfg.d_keep),), c, dtype=torch.int64)
            images = self._generate(candidates, g, batch_size)
            scores = self.d_scores(images, candidates, batch_size)
            out[where] = images[scores.topk(len(where)).indices.sort().values]  # the best, in the order drawn
        return out

    def _generate(self, labels: torch.Tensor, g: torch.Generator, batch_size: int) -> torch.Tensor:
        return self.from_noise(self._noise(len(labels), g), labels, batch_size)

    def _noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        # standing statistics stay those of the training noise: rescaling them too would undo noise_scale
        return torch.randn(n, self.cfg.noise_dim, generator=g) * self.cfg.noise_scale

    def sampling_noise(self, labels: torch.Tensor, seed: int) -> torch.Tensor | None:
        labels = self.check_labels(labels)
        if self.cfg.d_keep != 1:  # which candidates survive depends on the whole class's draw: no per-image split
            return None
        return self._noise(len(labels), torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def from_noise(self, noise: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        self.standing_statistics()
        net, out = self.sampling_network(), [torch.empty((0, *self.image_shape), dtype=torch.uint8)]
        with eval_mode(net):
            for zb, yb in zip(noise.split(batch_size), labels.split(batch_size)):
                with self.autocast():
                    out.append(to_uint8(net(zb.to(self.device), yb.to(self.device))).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def d_scores(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The discriminator's logit for each uint8 image as an image of its label (higher: more real)."""
        out = [torch.empty(0)]
        with eval_mode(self.D):
            for xb, yb in zip(images.split(batch_size), labels.split(batch_size)):
                x = xb.to(self.device).float().div(127.5).sub(1.0).contiguous(memory_format=self.memory_format)
                with self.autocast():
                    out.append(self.D(x, yb.to(self.device)).float().cpu())
        return torch.cat(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sampling G, and D for discriminator-ranked sampling (d_keep)."""
        return {**{f"G.{k}": v for k, v in self.sampling_network().state_dict().items()},
                **{f"D.{k}": v for k, v in self.D.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = {k[2:]: v for k, v in state.items() if k.startswith("G.")}
        self.G.load_state_dict(weights)
        d_weights = {k[2:]: v for k, v in state.items() if k.startswith("D.")}
        self._has_d = bool(d_weights)
        if d_weights:
            self.D.load_state_dict(d_weights)
        if self.ema is not None:
            self.ema.model.load_state_dict(weights)
        self.weights_changed()
