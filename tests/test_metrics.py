"""SOD metrics (hand-computed cases), frequency-tuned baseline, BN recalibration, evaluate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.metrics import SODMetrics, to_uint8


def _square(size=32, lo=8, hi=24):
    gt = np.zeros((size, size), np.uint8)
    gt[lo:hi, lo:hi] = 255
    return gt


def test_perfect_prediction_scores_one():
    m = SODMetrics()
    gt = _square()
    m.update(gt, gt)
    r = m.results()
    assert r["max_f"] == pytest.approx(1.0)
    assert r["mae"] == pytest.approx(0.0)
    assert r["s_measure"] == pytest.approx(1.0, abs=1e-9)
    assert r["max_e"] == pytest.approx(1.0)


def test_shifted_binary_prediction_matches_hand_computation():
    gt = _square()  # 16x16 = 256 foreground pixels
    pred = np.zeros_like(gt)
    pred[8:24, 12:28] = 255  # same square shifted right by 4: 192 true positives, 64 false positives
    m = SODMetrics()
    m.update(pred, gt)
    r = m.results()
    precision, recall = 192 / 256, 192 / 256
    f_beta = 1.3 * precision * recall / (0.3 * precision + recall)
    assert r["max_f"] == pytest.approx(f_beta, abs=1e-3)  # = 0.75
    assert r["mae"] == pytest.approx(128 / 1024)  # 64 FP + 64 FN of 32x32 pixels
    assert r["images"] == 1


def test_float_inputs_are_converted_like_uint8():
    gt = _square()
    rng = np.random.default_rng(0)
    prob = np.clip(gt / 255 * 0.8 + rng.random(gt.shape) * 0.3, 0, 1)
    a, b = SODMetrics(), SODMetrics()
    a.update(prob, gt / 255.0)
    b.update(to_uint8(prob), gt)
    assert a.results() == b.results()
    with pytest.raises(ValueError, match="same 2-D shape"):
        a.update(prob[:10], gt)


def test_ft_saliency_finds_a_colour_contrast_object():
    from hwnas.baseline import ft_saliency

    img = np.full((48, 48, 3), 128, np.uint8)
    img[16:32, 16:32] = (220, 30, 30)
    sal = ft_saliency(img)
    assert sal.shape == (48, 48) and sal.dtype == np.float32
    assert sal.min() == 0.0 and sal.max() == pytest.approx(1.0)
    assert sal[20:28, 20:28].mean() > 0.9 and sal[:8, :8].max() < 0.2
    m = SODMetrics()
    m.update(sal, _square(48, 16, 32))
    assert m.results()["max_f"] > 0.99
    assert np.all(ft_saliency(np.full((8, 8, 3), 77, np.uint8)) == 0)  # uniform image: nothing salient


def test_recalibrate_bn_gives_the_exact_data_statistics():
    from hwnas.bn import recalibrate_bn

    model = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3, momentum=0.1), nn.ReLU())
    nn.init.eye_(model[0].weight.view(3, 2))  # channels 0, 1 pass through; channel 2 is zero
    model[1].running_mean.fill_(5.0)
    model.eval()
    batches = [torch.randn(4, 2, 5, 5) * (i + 1) + i for i in range(3)]
    used = recalibrate_bn(model, iter(batches + batches), num_batches=3)
    assert used == 3
    # cumulative average of the per-batch means (momentum=None), not an exponential one
    expected_mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(model[1].running_mean[:2], expected_mean)
    expected_var = torch.stack([b.transpose(0, 1).reshape(2, -1).var(1, unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(model[1].running_var[:2], expected_var)
    assert model[1].momentum == 0.1 and not model.training and int(model[1].num_batches_tracked) == 3
    with pytest.raises(ValueError, match="no batch-norm"):
        recalibrate_bn(nn.Linear(2, 2), batches, 1)


def test_evaluate_accepts_logit_lists_and_probabilities():
    from hwnas.evaluate import evaluate

    gt = torch.from_numpy(_square(32)).float().div(255).view(1, 1, 32, 32)
    images = torch.zeros(2, 3, 16, 16)
    loader = [(images, gt.repeat(2, 1, 1, 1))]

    class Logits(nn.Module):  # perfect prediction at half resolution, as 5 logit maps
        def forward(self, x):
            return [(gt[:, :, ::2, ::2].expand(x.shape[0], 1, 16, 16) - 0.5) * 20] * 5

    class Prob(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1, 16, 16), 0.5)

    r = evaluate(Logits(), loader)
    assert r["images"] == 2 and r["max_f"] > 0.95 and r["mae"] < 0.05
    r = evaluate(Prob(), loader)
    assert r["mae"] == pytest.approx(0.5, abs=0.01)  # a constant map carries no information
