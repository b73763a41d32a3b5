"""Class-conditional DDPM on diffusers' UNet2DModel, with classifier-free guidance and fast samplers.

Training: epsilon prediction with the label replaced by a "null" class (index K) with probability
`label_dropout`, so one network learns both p(x | y) and p(x). Sampling: DDIM or DPM-Solver++ at
`sampling_steps` steps, mixing the two predictions with `guidance_scale`. diffusers' ready-made
pipelines take no class labels, so the sampling loop is written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthaug.generators.base import GENERATORS, GeneratorConfig
from synthaug.generators.layers import EMA, eval_mode, seeded_init
from synthaug.generators.loop import Batch, TrainableGenerator, to_signed, to_uint8


@dataclass
class DiffusionConfig(GeneratorConfig):
    lr: float = 1e-3  # learning rate (AdamW)
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # UNet widths, one per resolution
    layers_per_block: int = 1  # ResNet layers per UNet block
    attention: bool = False  # self-attention at the lowest resolution (costly on CPU)
    num_train_timesteps: int = 1000  # diffusion steps of the training noise schedule
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"  # noise schedule (cosine: better at small sizes)
    label_dropout: float = 0.1  # chance a training label becomes the null class (classifier-free guidance)
    labelled_share: float = 0.25  # with an unlabelled pool: share of each batch drawn from the labelled images
    guidance_scale: float = 2.0  # sampling: 1 = purely conditional, > 1 = stronger class fidelity, less diversity
    sampler: Literal["ddim", "dpm++"] = "ddim"  # DDIM (eta 0) or DPM-Solver++ (2nd order multistep; best once well trained)
    sampling_steps: int = 20  # denoising steps (network evaluations, doubled when guidance_scale != 1)
    strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # variations of source images (SDEdit):
    #   noise strength, one drawn per image; 0 = the source itself, 1 = generation from pure noise
    ema_decay: float = 0.999  # EMA of UNet weights, used for sampling; 0 disables
    weight_decay: float = 0.0  # AdamW weight decay

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if not self.block_out_channels or any(c < 1 for c in self.block_out_channels):
            raise ValueError(f"{name}.block_out_channels must be a non-empty list of positive widths, got {self.block_out_channels}")
        if self.layers_per_block < 1 or self.num_train_timesteps < 2 or self.sampling_steps < 1:
            raise ValueError(f"{name}: layers_per_block and sampling_steps must be >= 1, num_train_timesteps >= 2")
        if self.sampling_steps > self.num_train_timesteps:
            raise ValueError(f"{name}.sampling_steps ({self.sampling_steps}) exceeds num_train_timesteps ({self.num_train_timesteps})")
        if self.beta_schedule not in ("linear", "squaredcos_cap_v2"):
            raise ValueError(f"{name}.beta_schedule must be linear or squaredcos_cap_v2, got {self.beta_schedule!r}")
        if not self.strengths or any(not 0 <= s <= 1 for s in self.strengths):
            raise ValueError(f"{name}.strengths must be a non-empty list of numbers in [0, 1], got {self.strengths}")
        if self.sampler not in ("ddim", "dpm++"):
            raise ValueError(f"{name}.sampler must be ddim or dpm++, got {self.sampler!r}")
        if not 0 < self.labelled_share <= 1:
            raise ValueError(f"{name}.labelled_share must be in (0, 1], got {self.labelled_share}")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"{name}.label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.guidance_scale < 0:
            raise ValueError(f"{name}.guidance_scale must be >= 0, got {self.guidance_scale}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"{name}.ema_decay must be in [0, 1), got {self.ema_decay}")


def build_unet(cfg: DiffusionConfig, channels: int, size: tuple[int, int], num_classes: int) -> nn.Module:
    from diffusers import UNet2DModel

    widths = tuple(cfg.block_out_channels)
    n = len(widths)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=widths,
                       layers_per_block=cfg.layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
                       norm_num_groups=min(32, math.gcd(*widths)), add_attention=cfg.attention,
                       attention_head_dim=min(8, widths[-1]), num_class_embeds=num_classes + 1)


def scheduler_kwargs(cfg: DiffusionConfig) -> dict[str, Any]:
    return {"num_train_timesteps": cfg.num_train_timesteps, "beta_schedule": cfg.beta_schedule}


@GENERATORS.register("diffusion")
class Diffusion(TrainableGenerator):
    """Class-conditional DDPM (diffusers UNet2DModel, classifier-free guidance, EMA, DDIM / DPM-Solver++)."""

    name = "diffusion"
    Config = DiffusionConfig
    cfg: DiffusionConfig
    takes_sources = "optional"  # with sources: SDEdit variations (noise each to a strength, denoise with its class)

    def __init__(self, cfg: DiffusionConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        from diffusers import DDPMScheduler

        c, h, w = self.image_shape
        multiple = 2 ** (len(cfg.block_out_channels) - 1)  # the UNet halves the size this many times
        self.padded = (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
        with seeded_init(cfg.seed):
            self.unet = build_unet(cfg, c, self.padded, self.num_classes)
        self.unet.to(self.device, memory_format=self.memory_format)
        self.ema = EMA(self.unet, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.train_schedule = DDPMScheduler(**scheduler_kwargs(cfg))
        self.null_class = self.num_classes

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to the size the UNet needs (reflected, so no artificial border is learnt)."""
        dh, dw = self.padded[0] - x.shape[2], self.padded[1] - x.shape[3]
        if dh == 0 and dw == 0:
            return x
        mode = "reflect" if dh < x.shape[2] and dw < x.shape[3] else "replicate"
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode=mode)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.image_shape[1:]
        top, left = (self.padded[0] - h) // 2, (self.padded[1] - w) // 2
        return x[:, :, top:top + h, left:left + w]

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"unet": self.unet}
        if self.ema is not None:
            nets["unet_ema"] = self.ema.model
        return nets

    def setup_training(self) -> dict[str, torch.optim.Optimizer]:
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.unet.train()
        return {"opt": self.opt}

    def noise_prediction_loss(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """MSE between the true noise (of the padded size) and the UNet's prediction at timesteps t."""
        x0 = self.pad(x0)
        x_t = self.train_schedule.add_noise(x0, noise, t)
        with self.autocast():
            pred = self.parallel("unet")(x_t, t, class_labels=y).sample.float()
        return F.mse_loss(pred, noise)

    def train_step(self, next_batch: Callable[[], Batch], step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        x0, y = next_batch()
        n = len(y)
        t = torch.randint(0, self.cfg.num_train_timesteps, (n,), generator=g, device=g.device).to(self.device)
        noise = torch.randn(n, x0.shape[1], *self.padded, generator=g, device=g.device).to(self.device)
        drop = torch.rand(n, generator=g, device=g.device).to(self.device) < self.cfg.label_dropout
        loss = self.noise_prediction_loss(x0, torch.where(drop, self.null_class, y), t, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.unet, step)
        return {"loss": loss.detach()}

    def make_scheduler(self) -> Any:  # a diffusers scheduler (imported lazily: diffusers takes ~8 s to import)
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        # "trailing" spacing starts at the last training timestep: better images at few steps. Both clip the
        # predicted clean image to [-1, 1] at every step: near t = T the cosine schedule's alpha is ~0, and an
        # unclipped x0 = (x - sigma * eps) / alpha from a not-yet-converged network saturates every pixel.
        if self.cfg.sampler == "ddim":
            return DDIMScheduler(**scheduler_kwargs(self.cfg), timestep_spacing="trailing", clip_sample=True)
        return DPMSolverMultistepScheduler(**scheduler_kwargs(self.cfg), algorithm_type="dpmsolver++",
                                           timestep_spacing="trailing", thresholding=True, sample_max_value=1.0)

    def denoise(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor | None = None,
                strength: float = 1.0) -> torch.Tensor:
        """Run the sampler from noise x to images, with classifier-free guidance. With `x0` (padded images in
        [-1, 1]): SDEdit, i.e. x0 noised with x to the timestep that leaves strength x sampling_steps steps, then
        denoised from there (as diffusers' img2img pipelines do)."""
        scheduler = self.make_scheduler()  # a fresh one per batch: multistep solvers keep history
        scheduler.set_timesteps(self.cfg.sampling_steps)
        timesteps = scheduler.timesteps
        if x0 is None:
            x = x * scheduler.init_noise_sigma
        else:
            run = min(int(self.cfg.sampling_steps * strength), self.cfg.sampling_steps)
            if run == 0:
                return x0
            start = self.cfg.sampling_steps - run
            timesteps = timesteps[start:]
            if hasattr(scheduler, "set_begin_index"):  # multistep solvers count steps from here
                scheduler.set_begin_index(start)
            x = scheduler.add_noise(x0, x, timesteps[:1])
        scale = self.cfg.guidance_scale
        guided = scale != 1.0
        labels = torch.cat([y, torch.full_like(y, self.null_class)]) if guided else y
        for t in timesteps:
            model_in = scheduler.scale_model_input(x, t)
            model_in = torch.cat([model_in, model_in]) if guided else model_in
            with self.autocast():
                eps = net(model_in.contiguous(memory_format=self.memory_format), t.to(self.device),
                          class_labels=labels).sample.float()
            if guided:
                cond, uncond = eps.chunk(2)
                eps = uncond + scale * (cond - uncond)
            x = scheduler.step(eps, t, x).prev_sample
        return x

    def image_strengths(self, n: int, seed: int) -> list[float]:
        """The strength of each variation: drawn per image from `strengths` with (seed, position), so it does not
        depend on the batch size."""
        return [float(self.cfg.strengths[int(np.random.default_rng([seed, i]).integers(len(self.cfg.strengths)))])
                for i in range(n)]

    def sample_details(self, labels: torch.Tensor, seed: int, with_sources: bool = False) -> dict[str, list[Any]]:
        return {"strength": self.image_strengths(len(labels), seed)} if with_sources else {}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256, sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        sources = self.check_sources(labels, sources)
        noise = self.sampling_noise(labels, seed)
        if sources is not None:
            net = self.ema.model if self.ema is not None else self.unet
            return self.vary(net, labels, sources, noise, seed, batch_size)
        return self.from_noise(noise, labels, batch_size)

    def sampling_noise(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        labels = self.check_labels(labels)
        return torch.randn(len(labels), self.image_shape[0], *self.padded, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def from_noise(self, noise: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        net = self.ema.model if self.ema is not None else self.unet
        out = [torch.empty((0, *self.image_shape), dtype=torch.uint8)]
        with eval_mode(net):
            for xb, yb in zip(noise.split(batch_size), labels.split(batch_size)):
                x = self.denoise(net, xb.to(self.device), yb.to(self.device))
                out.append(to_uint8(self.crop(x)).cpu())
        return torch.cat(out)

    def vary(self, net: nn.Module, labels: torch.Tensor, sources: torch.Tensor, noise: torch.Tensor, seed: int,
             batch_size: int) -> torch.Tensor:
        """SDEdit variations: image i is sources[i] noised to its strength and denoised towards class labels[i]."""
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        strengths = self.image_strengths(len(labels), seed)
        with eval_mode(net):
            for strength in sorted(set(strengths)):  # one starting timestep per sampler run
                members = torch.tensor([i for i, s in enumerate(strengths) if s == strength], dtype=torch.int64)
                for chunk in members.split(batch_size):
                    x0 = self.pad(to_signed(sources[chunk])).to(self.device)
                    x = self.denoise(net, noise[chunk].to(self.device), labels[chunk].to(self.device), x0=x0, strength=strength)
                    out[chunk] = to_uint8(self.crop(x)).cpu()
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        net = self.ema.model if self.ema is not None else self.unet
        return {f"unet.{k}": v for k, v in net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
        self.unet.load_state_dict(weights)
        if self.ema is not None:
            self.ema.model.load_state_dict(weights)
