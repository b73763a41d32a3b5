"""Classifier-free guidance of the diffusion generator, checked against the formula computed by hand."""

import pytest
import torch

from synthaug.generators.api import generator_config
from synthaug.generators.diffusion import Diffusion

TINY = {"block_out_channels": [8, 16], "sampling_steps": 3, "num_train_timesteps": 100, "progress": False,
        "precision": "fp32", "device": "cpu"}


def _gen(**overrides) -> Diffusion:
    return Diffusion(generator_config("diffusion", {**TINY, **overrides}), (1, 8, 8), ["a", "b", "c"])


class Recorder(torch.nn.Module):
    """Wraps the UNet and remembers the class labels of every call."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x, t, class_labels):
        self.calls.append(class_labels.clone())
        return self.net(x, t, class_labels=class_labels)


def _by_hand(gen: Diffusion, x: torch.Tensor, y: torch.Tensor, scale: float | None) -> torch.Tensor:
    """The sampling loop with eps = uncond + s (cond - uncond); scale None: the conditional prediction alone."""
    scheduler = gen.make_scheduler()
    scheduler.set_timesteps(gen.cfg.sampling_steps)
    x = x * scheduler.init_noise_sigma
    null = torch.full_like(y, gen.null_class)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        cond = gen.unet(model_in, t, class_labels=y).sample.float()
        if scale is None:
            eps = cond
        else:
            uncond = gen.unet(model_in, t, class_labels=null).sample.float()
            eps = uncond + scale * (cond - uncond)
        x = scheduler.step(eps, t, x).prev_sample
    return x


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
@torch.no_grad()
def test_guided_prediction_is_uncond_plus_scale_times_the_difference(sampler):
    gen = _gen(guidance_scale=3.0, sampler=sampler)
    gen.unet.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 1])
    recorder = Recorder(gen.unet)
    got = gen.denoise(recorder, x, y)
    assert torch.allclose(got, _by_hand(gen, x, y, 3.0), atol=1e-5)
    assert len(recorder.calls) == 3  # one batched (cond, uncond) call per step
    assert torch.equal(recorder.calls[0], torch.tensor([0, 1, 2, 1, 3, 3, 3, 3]))
    # the guided result differs from purely conditional sampling: guidance did something
    assert not torch.allclose(got, _by_hand(gen, x, y, None), atol=1e-4)


@torch.no_grad()
def test_guidance_scale_one_is_the_purely_conditional_prediction():
    gen = _gen(guidance_scale=1.0)
    gen.unet.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2, 0, 1, 0])
    recorder = Recorder(gen.unet)
    got = gen.denoise(recorder, x, y)
    assert torch.allclose(got, _by_hand(gen, x, y, None), atol=1e-5)
    assert all(torch.equal(c, y) for c in recorder.calls)  # the null class is never evaluated


@torch.no_grad()
def test_guidance_scale_zero_is_the_unconditional_prediction():
    gen = _gen(guidance_scale=0.0)
    gen.unet.eval()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2])
    got = gen.denoise(gen.unet, x, y)
    uncond = _by_hand(gen, x, torch.full_like(y, gen.null_class), None)
    assert torch.allclose(got, uncond, atol=1e-5)


def test_label_dropout_sends_the_expected_share_to_the_null_class(monkeypatch):
    gen = _gen(label_dropout=0.3)
    gen.setup_training()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    labels = torch.arange(3).repeat(200)  # 600 labels per step

    def record(x0, y, t, noise):
        seen.append(y.clone())
        return sum(p.sum() for p in gen.unet.parameters()) * 0.0  # no network pass needed to count labels

    monkeypatch.setattr(gen, "noise_prediction_loss", record)
    g = torch.Generator().manual_seed(0)
    for step in range(5):
        gen.train_step(lambda: (torch.zeros(len(labels), 1, 8, 8), labels), step, g)
    y = torch.cat(seen)
    original = labels.repeat(5)
    dropped = y == gen.null_class
    share = float(dropped.float().mean())
    assert abs(share - 0.3) < 0.03  # 3,000 Bernoulli(0.3) draws: sd 0.008
    assert torch.equal(y[~dropped], original[~dropped])  # labels that are kept are unchanged
    for c in range(3):  # dropout does not favour a class
        assert abs(float(dropped[original == c].float().mean()) - 0.3) < 0.05
