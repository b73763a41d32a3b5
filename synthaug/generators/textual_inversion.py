"""Per-class textual inversion (Gal et al. 2022), as DA-Fusion uses it: learn one new token per class, so that
"a photo of a <cat>" makes Stable Diffusion draw *these* cats.

Only the new tokens' embedding vectors are trained; the VAE, UNet and text encoder stay frozen. A step: take a
batch of real images (randomly mirrored), noise their VAE latents at random timesteps, and ask the UNet to
predict the noise from the class prompt with the class token; the loss is the usual denoising MSE. The loop
is written out here (not diffusers' example script) so that it checkpoints, resumes and logs like the rest
of synthaug: `ti_loss` (training batches) and `ti_eval_loss` (a fixed batch: fixed images, noise and
timesteps, so that its trend is the learning and not the sampling noise) go to metrics.jsonl.

The result is one `{token: [vectors, dim]}` tensor per class, the format diffusers' `load_textual_inversion`
reads.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthaug.generators.loop import load_training_state, save_training_state
from synthaug.generators.stable_diffusion import explain_out_of_memory, fill_prompt, to_rgb_float
from synthaug.runs import Run

CHECKPOINT = "checkpoint.safetensors"  # the name every generator run uses (experiments resume from it)
EVAL_IMAGES = 8  # images in the fixed batch behind ti_eval_loss


@dataclass
class TextualInversionSettings:
    steps: int  # optimiser steps
    lr: float  # Adam learning rate of the token vectors
    batch_size: int  # real images per step
    vectors: int  # embedding vectors per class token
    size: tuple[int, int]  # (height, width) the images are encoded at (the generation size)
    seed: int = 0  # seeds batches, mirroring, noise and timesteps
    checkpoint_every: int = 500  # steps between checkpoints (resume continues from the last)
    log_every: int = 50  # steps between metric rows
    progress: bool = True  # show a progress bar


def class_token(name: str, taken: set[str]) -> str:
    """'<golden-retriever>' for class 'Golden Retriever': lower case, runs of other characters as '-', unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"
    token, n = f"<{slug}>", 1
    while token in taken:
        n += 1
        token = f"<{slug}-{n}>"
    taken.add(token)
    return token


def class_tokens(class_names: list[str]) -> dict[str, str]:
    taken: set[str] = set()
    return {name: class_token(name, taken) for name in class_names}


def vector_tokens(token: str, vectors: int) -> list[str]:
    """The tokenizer entries of a multi-vector token, named as diffusers' load_textual_inversion names them."""
    return [token] + [f"{token}_{i}" for i in range(1, vectors)]


class TokenTable(nn.Module):
    """The trainable vectors of the new tokens, and which token id each row belongs to."""

    def __init__(self, token_ids: list[int], init: torch.Tensor, vocab_size: int) -> None:
        super().__init__()
        self.learned = nn.Parameter(init.clone().float())
        lookup = torch.full((vocab_size,), -1, dtype=torch.int64)
        lookup[torch.tensor(token_ids)] = torch.arange(len(token_ids))
        self.register_buffer("lookup", lookup, persistent=False)


class EmbeddingWithLearnedTokens(nn.Module):
    """The text encoder's token embedding, except that the new tokens' rows come from a TokenTable: gradients reach
    only those vectors, and the optimiser holds state for them alone (not for the 49k-row vocabulary)."""

    def __init__(self, base: nn.Embedding, table: TokenTable) -> None:
        super().__init__()
        self.base, self.table = base, table

    @property
    def weight(self) -> torch.Tensor:  # some code asks the input embedding for its weight (dtype, size)
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.base(input_ids)
        row = self.table.lookup[input_ids]
        learned = self.table.learned[row.clamp(min=0)].to(out.dtype)
        return torch.where((row >= 0).unsqueeze(-1), learned, out)


class TextualInversionTrainer:
    """Trains one token per class on a text-to-image pipeline's tokenizer, text encoder, VAE and UNet. The pipeline
    is changed (new tokens, a wrapped embedding): use a fresh one for sampling and load the result into it."""

    def __init__(self, pipe: Any, images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                 templates: dict[str, list[str]], settings: TextualInversionSettings, run: Run | None) -> None:
        for part in ("tokenizer", "text_encoder", "vae", "unet", "scheduler"):
            if getattr(pipe, part, None) is None:
                raise ValueError(f"textual inversion needs a pipeline with a {part} (Stable Diffusion 1.x / 2.x); "
                                 f"{type(pipe).__name__} has none")
        self.pipe, self.settings, self.run = pipe, settings, run
        self.device = pipe.unet.device
        self.class_names = class_names
        self.tokens = class_tokens(class_names)
        self.labels = labels.cpu()
        self.g = torch.Generator().manual_seed(settings.seed)
        self.table = self.add_tokens()
        # every class's prompts with its token written out in full (diffusers' pipelines expand "<cat>" to
        # "<cat> <cat>_1 ..." the same way when they meet a multi-vector token)
        self.prompts = {c: [fill_prompt(t, " ".join(vector_tokens(self.tokens[name], settings.vectors))) for t in templates[name]]
                        for c, name in enumerate(class_names)}
        from diffusers import DDPMScheduler

        self.noise_schedule = DDPMScheduler.from_config(pipe.scheduler.config)
        self.latent_mean, self.latent_std = self.encode(images)
        self.optimizer = torch.optim.Adam([self.table.learned], lr=settings.lr)
        self.state: dict[str, Any] = {"step": 0, "train_seconds": 0.0}
        self.eval_batch = self.fixed_eval_batch()

    # -- set-up -------------------------------------------------------------------------------------------
    def add_tokens(self) -> TokenTable:
        """Add each class's token(s) to the tokenizer, initialised from the embedding of the class name."""
        tok, encoder = self.pipe.tokenizer, self.pipe.text_encoder
        encoder.to(torch.float32)  # the vectors are trained in fp32 (the UNet and VAE keep the pipeline's precision)
        names = [t for name in self.class_names for t in vector_tokens(self.tokens[name], self.settings.vectors)]
        clash = [t for t in names if t in tok.get_vocab()]
        if clash:
            raise ValueError(f"textual inversion tokens {clash} are already in the tokenizer's vocabulary")
        base_weight = encoder.get_input_embeddings().weight.detach()
        init = []
        for name in self.class_names:
            ids = tok(name.replace("_", " "), add_special_tokens=False).input_ids or [tok.unk_token_id or 0]
            init += [base_weight[ids].mean(0)] * self.settings.vectors
        tok.add_tokens(names)
        encoder.resize_token_embeddings(len(tok), mean_resizing=False)  # the new rows are never read
        encoder.requires_grad_(False)
        self.pipe.unet.requires_grad_(False)
        self.pipe.vae.requires_grad_(False)
        base = encoder.get_input_embeddings()
        table = TokenTable(tok.convert_tokens_to_ids(names), torch.stack(init), base.num_embeddings).to(self.device)
        encoder.set_input_embeddings(EmbeddingWithLearnedTokens(base, table))
        return table

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE latent mean and std of every image and of its mirror image ([N, 2, 4, h, w] each): encoded once, then
        every step samples latents from them (DA-Fusion re-encodes every step; the distribution is the same)."""
        vae = self.pipe.vae
        means, stds = [], []
        for chunk in images.split(self.settings.batch_size):
            x = to_rgb_float(chunk, self.settings.size)
            x = torch.stack([x, x.flip(-1)], 1).flatten(0, 1).mul(2).sub(1)  # [-1, 1], image then its mirror
            with explain_out_of_memory("textual inversion encoding the training images"):
                dist = vae.encode(x.to(self.device, vae.dtype)).latent_dist
            means.append(dist.mean.float().unflatten(0, (-1, 2)))
            stds.append(dist.std.float().unflatten(0, (-1, 2)))
        return torch.cat(means), torch.cat(stds)

    def fixed_eval_batch(self) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.settings.seed + 1)
        n = min(EVAL_IMAGES, len(self.labels))
        idx = torch.linspace(0, len(self.labels) - 1, n).round().long()
        steps = self.noise_schedule.config.num_train_timesteps
        return {"index": idx, "flip": torch.zeros(n, dtype=torch.long),
                "timesteps": torch.linspace(0.1 * steps, 0.9 * steps, n).long(),
                "noise": torch.randn(n, *self.latent_mean.shape[2:], generator=g),
                "eps": torch.randn(n, *self.latent_mean.shape[2:], generator=g), "template": torch.zeros(n, dtype=torch.long)}

    # -- the step ---------------------------------------------------------------------------------------------
    def draw_batch(self) -> dict[str, torch.Tensor]:
        s, g = self.settings, self.g
        steps = self.noise_schedule.config.num_train_timesteps
        shape = (s.batch_size, *self.latent_mean.shape[2:])
        return {"index": torch.randint(len(self.labels), (s.batch_size,), generator=g),
                "flip": torch.randint(2, (s.batch_size,), generator=g),
                "timesteps": torch.randint(steps, (s.batch_size,), generator=g),
                "noise": torch.randn(shape, generator=g), "eps": torch.randn(shape, generator=g),
                "template": torch.randint(1 << 30, (s.batch_size,), generator=g)}

    def denoising_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE between the UNet's prediction and its target (noise, or velocity for v-prediction models) for the
        batch's images noised at its timesteps, conditioned on their class prompts."""
        unet, dev = self.pipe.unet, self.device
        idx, flip = batch["index"], batch["flip"]
        mean, std = self.latent_mean[idx, flip.to(self.latent_mean.device)], self.latent_std[idx, flip.to(self.latent_std.device)]
        latents = (mean + std * batch["eps"].to(dev)) * self.pipe.vae.config.scaling_factor
        noise, t = batch["noise"].to(dev), batch["timesteps"].to(dev)
        noisy = self.noise_schedule.add_noise(latents, noise, t)
        prompts = [self.prompts[c][k % len(self.prompts[c])] for c, k in zip(self.labels[idx].tolist(), batch["template"].tolist())]
        ids = self.pipe.tokenizer(prompts, padding="max_length", max_length=self.pipe.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids.to(dev)
        hidden = self.pipe.text_encoder(ids)[0].to(unet.dtype)
        pred = unet(noisy.to(unet.dtype), t, encoder_hidden_states=hidden).sample.float()
        if self.noise_schedule.config.prediction_type == "v_prediction":
            target = self.noise_schedule.get_velocity(latents, noise, t)
        else:
            target = noise
        return F.mse_loss(pred, target.float())

    @torch.no_grad()
    def eval_loss(self) -> float:
        return float(self.denoising_loss(self.eval_batch))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        if self.run is not None:
            save_training_state(self.run.file(CHECKPOINT), {"tokens": self.table}, {"adam": self.optimizer}, self.state,
                                {"rng": self.g.get_state()})

    def restore(self) -> bool:
        if self.run is None or not self.run.file(CHECKPOINT).is_file():
            return False
        state, extra = load_training_state(self.run.file(CHECKPOINT), {"tokens": self.table}, {"adam": self.optimizer})
        self.state.update(state)
        self.g.set_state(extra["rng"])
        return True

    # -- the loop ---------------------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        from tqdm.auto import tqdm

        s = self.settings
        if resume and self.restore() and self.run is not None:
            self.run.log(f"textual inversion resumed at step {self.state['step']}/{s.steps}", echo=True)
        first_eval = self.eval_loss()
        if self.run is not None and self.state["step"] == 0:
            self.run.append_metrics({"step": 0, "ti_eval_loss": first_eval})
        bar = tqdm(total=s.steps, initial=self.state["step"], desc="textual inversion", unit="step", leave=False,
                   disable=not s.progress)
        running, n, start = 0.0, 0, time.perf_counter()
        while self.state["step"] < s.steps:
            with explain_out_of_memory(f"textual inversion at batch size {s.batch_size}"):
                loss = self.denoising_loss(self.draw_batch())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            running, n = running + loss.item(), n + 1
            self.state["step"] += 1
            bar.update(1)
            step = self.state["step"]
            if step % s.log_every == 0 or step == s.steps:
                row = {"step": step, "ti_loss": running / n, "ti_eval_loss": self.eval_loss()}
                running, n = 0.0, 0
                bar.set_postfix(loss=f"{row['ti_loss']:.4f}")
                if self.run is not None:
                    self.run.append_metrics(row)
            if step % s.checkpoint_every == 0 or step == s.steps:
                self.state["train_seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                self.checkpoint()
        bar.close()
        self.state["train_seconds"] += time.perf_counter() - start
        return {"textual_inversion_steps": self.state["step"], "ti_first_eval_loss": first_eval,
                "ti_final_eval_loss": self.eval_loss(), "ti_seconds": self.state["train_seconds"]}

    def embeddings(self) -> dict[str, torch.Tensor]:
        """{token: [vectors, dim]} per class, the diffusers textual-inversion format."""
        learned = self.table.learned.detach().float().cpu()
        v = self.settings.vectors
        return {self.tokens[name]: learned[k * v:(k + 1) * v].clone() for k, name in enumerate(self.class_names)}
