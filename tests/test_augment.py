import pytest
import torch

from synthaug.training.augment import Augmenter, mix_batch, random_erasing, random_flip, random_translate, soft_targets
from synthaug.training.config import TrainConfig


def _batch(n=16, c=1, h=8, w=8):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w) / (n * c * h * w)


def test_translate_is_a_shift_of_the_padded_image():
    x = _batch()
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):  # each output must be one 8x8 window of its padded input
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, x)  # and not every image is the identity window


def test_flip_flips_about_half_and_is_seeded():
    x = _batch(200)
    a = random_flip(x, torch.Generator().manual_seed(1))
    b = random_flip(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    flipped = [(torch.equal(a[i], x[i].flip(-1))) for i in range(200)]
    assert 60 < sum(flipped) < 140 and all(torch.equal(a[i], x[i]) or flipped[i] for i in range(200))


def test_erasing_changes_a_rectangle_only_where_chosen():
    x = torch.zeros(100, 1, 16, 16)
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out != 0).flatten(1).any(1)
    assert 25 < int(changed.sum()) < 75
    frac = (out != 0).flatten(1).float().mean(1)[changed]
    assert float(frac.max()) <= 0.40


def test_randaugment_per_sample_is_seeded_uint8():
    cfg = TrainConfig(augment=["randaugment"])
    aug = Augmenter(cfg, 1)
    x = (torch.rand(8, 1, 16, 16) * 255).to(torch.uint8)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32 and 0 <= float(a.min()) and float(a.max()) <= 1


def test_mixup_and_cutmix_targets_are_distributions():
    x = _batch(8)
    t = soft_targets(torch.arange(8) % 3, 3, 0.1)
    assert torch.allclose(t.sum(1), torch.ones(8)) and abs(float(t.max()) - (0.9 + 0.1 / 3)) < 1e-6
    for cfg in (TrainConfig(mixup_alpha=0.4), TrainConfig(cutmix_alpha=1.0)):
        mx, mt = mix_batch(x, t, cfg, torch.Generator().manual_seed(0))
        assert torch.allclose(mt.sum(1), torch.ones(8))
        assert not torch.equal(mx, x)


def _one_hot_batch(n=8):
    """Images whose every pixel value is unique, and one class per image (so targets name their sources)."""
    x = torch.randperm(n * 3 * 8 * 8, generator=torch.Generator().manual_seed(5)).float().reshape(n, 3, 8, 8)
    return x / x.max(), soft_targets(torch.arange(n), n, 0.0)


def _lambda_and_partner(mt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From mixed one-hot targets: the weight of each image's own class and the class it was mixed with."""
    own = mt.diagonal()
    rest = mt.clone()
    rest.fill_diagonal_(0)
    partner = torch.where(own < 1 - 1e-6, rest.argmax(1), torch.arange(len(mt)))
    return own, partner


def test_mixup_images_and_targets_use_the_same_lambda_and_partner():
    x, t = _one_hot_batch()
    mx, mt = mix_batch(x, t, TrainConfig(mixup_alpha=1.0), torch.Generator().manual_seed(1))
    own, partner = _lambda_and_partner(mt)
    mixed_rows = partner != torch.arange(8)
    assert mixed_rows.any() and torch.allclose(own[mixed_rows], own[mixed_rows][0])  # one lambda per batch
    lam = float(own[mixed_rows][0])
    assert 0 < lam < 1
    assert torch.allclose(mt, lam * t + (1 - lam) * t[partner], atol=1e-6)
    assert torch.allclose(mx, lam * x + (1 - lam) * x[partner], atol=1e-6)
    assert sorted(partner.tolist()) == list(range(8))  # a permutation of the batch


def test_cutmix_target_weights_are_the_pixel_shares():
    x, t = _one_hot_batch()
    for seed in range(4):
        mx, mt = mix_batch(x, t, TrainConfig(cutmix_alpha=1.0), torch.Generator().manual_seed(seed))
        own, partner = _lambda_and_partner(mt)
        for i in range(8):
            if partner[i] == i:
                assert torch.equal(mx[i], x[i])
                continue
            from_partner = (mx[i] == x[partner[i]]) & (mx[i] != x[i])
            from_self = mx[i] == x[i]
            assert bool((from_partner | from_self).all())  # every pixel comes from one of the two images
            share = float(from_partner.float().mean())
            assert 0 < share < 1 and own[i] == pytest.approx(1 - share, abs=1e-6)
            assert mt[i, partner[i]] == pytest.approx(share, abs=1e-6)


def _textured(n=16):
    """n copies of one image with structure (gradient + a bright square), so every op visibly changes it."""
    img = torch.linspace(0, 200, 24).view(1, 1, 24).expand(1, 24, 24).clone()
    img[:, 6:14, 4:10] = 255
    return img.to(torch.uint8).unsqueeze(0).repeat(n, 1, 1, 1)


@pytest.mark.parametrize("op", ["randaugment", "trivialaugment"])
def test_auto_augment_changes_images_with_a_different_op_per_sample(op):
    x = _textured()
    out = Augmenter(TrainConfig(augment=[op]), 1)(x, torch.Generator().manual_seed(0))
    ref = x.float() / 255
    changed = (out - ref).abs().flatten(1).amax(1) > 1 / 255
    assert int(changed.sum()) >= 10  # most images changed (TrivialAugment may draw the identity or magnitude 0)
    distinct = {tuple((o * 255).round().to(torch.uint8).flatten().tolist()) for o in out}
    assert len(distinct) >= 8  # identical inputs came out different: the op is drawn per sample, not per batch
    again = Augmenter(TrainConfig(augment=[op]), 1)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_diffaugment_color_is_a_bounded_brightness_saturation_contrast_change():
    from synthaug.generators.diffaugment import color

    g = torch.Generator().manual_seed(0)
    for channels in (1, 3):
        x = torch.rand(64, channels, 8, 8, generator=torch.Generator().manual_seed(channels)) * 2 - 1
        out = color(x, g)
        shift = out.mean((1, 2, 3)) - x.mean((1, 2, 3))  # saturation and contrast keep the mean
        assert float(shift.abs().max()) <= 0.5 + 1e-5 and float(shift.std()) > 0.1
        grey_in, grey_out = x.mean(1), out.mean(1)
        contrast = grey_out.flatten(1).std(1) / grey_in.flatten(1).std(1)
        assert float(contrast.min()) >= 0.5 - 1e-4 and float(contrast.max()) <= 1.5 + 1e-4 and float(contrast.std()) > 0.1
        centred_in = grey_in - grey_in.mean((1, 2), keepdim=True)
        centred_out = grey_out - grey_out.mean((1, 2), keepdim=True)
        assert torch.allclose(centred_out, contrast.view(-1, 1, 1) * centred_in, atol=1e-4)  # an affine change per image
        if channels == 3:
            chroma_in, chroma_out = x - x.mean(1, keepdim=True), out - out.mean(1, keepdim=True)
            ratio = chroma_out.flatten(1).norm(dim=1) / chroma_in.flatten(1).norm(dim=1)
            saturation = ratio / contrast
            assert float(saturation.min()) >= 0 and float(saturation.max()) <= 2 + 1e-4 and float(saturation.std()) > 0.2
