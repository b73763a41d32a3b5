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
