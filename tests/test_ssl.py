"""FixMatch's unlabelled loss and FreeMatch's self-adaptive thresholds, checked by hand on tiny batches."""

import math

import pytest
import torch

from synthaug.training.ssl import SelfAdaptiveThreshold, fixmatch_loss, pseudo_labels


def test_fixmatch_loss_by_hand():
    # weak-view probabilities: image 0 sure of class 1 (0.95 > tau), image 1 unsure (max 0.5), image 2 sure of class 0
    weak = torch.log(torch.tensor([[0.03, 0.95, 0.02], [0.5, 0.3, 0.2], [0.97, 0.02, 0.01]]))
    strong = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.5, 0.5, 0.0]], requires_grad=True)
    loss, mask = fixmatch_loss(weak, strong, threshold=0.9)
    assert mask.tolist() == [1.0, 0.0, 1.0]

    def ce(logits, label):
        return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))

    expected = (ce([0.0, 1.0, 0.0], 1) + 0 + ce([0.5, 0.5, 0.0], 0)) / 3  # averaged over all three images
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert strong.grad[1].abs().sum() == 0  # the masked image contributes nothing
    assert weak.grad is None  # and no gradient reaches the weak view


def test_per_class_thresholds_apply_by_the_predicted_class():
    weak = torch.log(torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    labels, mask = pseudo_labels(weak, torch.tensor([0.9, 0.6]))  # class 0 needs 0.9, class 1 only 0.6
    assert labels.tolist() == [0, 1] and mask.tolist() == [0.0, 1.0]


def test_self_adaptive_threshold_follows_confidence_per_class():
    sat = SelfAdaptiveThreshold(num_classes=2, momentum=0.5)
    assert sat.thresholds().tolist() == pytest.approx([0.5, 0.5])  # 1 / classes at the start
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    out = sat.update(torch.log(probs))
    global_level = 0.5 * 0.5 + 0.5 * (0.9 + 0.7) / 2  # 0.65
    class_level = [0.5 * 0.5 + 0.5 * 0.8, 0.5 * 0.5 + 0.5 * 0.2]  # [0.65, 0.35]
    assert out.tolist() == pytest.approx([global_level, class_level[1] / class_level[0] * global_level])
    restored = SelfAdaptiveThreshold(num_classes=2, momentum=0.5)
    restored.load_state_dict(sat.state_dict())
    assert torch.equal(restored.thresholds(), sat.thresholds())
    with pytest.raises(ValueError, match="momentum"):
        SelfAdaptiveThreshold(2, momentum=1.0)
