import copy

import pytest
import torch
import torch.nn as nn

from _deploy_models import MultiKernelDW, randomize_bn, tiny_sod
from deploy import Reparameterizable, fold_bn, fuse_conv_bn, pad_kernel, reparameterize
from deploy.reparam import count_batchnorm

X = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))


def test_fuse_conv_bn_matches_eval_bn_with_random_stats():
    for groups, bias in [(1, False), (1, True), (4, False)]:
        conv = nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias)
        bn = randomize_bn(nn.Sequential(nn.BatchNorm2d(8)), seed=groups)[0].eval()
        x = torch.randn(1, 8, 9, 9)
        with torch.no_grad():
            assert (fuse_conv_bn(conv, bn)(x) - bn(conv(x))).abs().max().item() <= 1e-5


def test_fold_bn_formula_on_a_single_channel():
    bn = nn.BatchNorm2d(1, eps=0.0).eval()
    with torch.no_grad():
        bn.running_mean.fill_(2.0), bn.running_var.fill_(4.0), bn.weight.fill_(3.0), bn.bias.fill_(1.0)
    w, b = fold_bn(torch.ones(1, 1, 1, 1), torch.tensor([5.0]), bn)
    # t = 3 / sqrt(4) = 1.5; W' = 1.5; b' = 1 + (5 - 2) * 1.5 = 5.5
    assert w.item() == 1.5 and b.item() == 5.5


def test_pad_kernel_centres_and_rejects_even_growth():
    k = torch.arange(9.0).reshape(1, 1, 3, 3)
    p = pad_kernel(k, 7)
    assert p.shape == (1, 1, 7, 7) and torch.equal(p[..., 2:5, 2:5], k) and p.sum() == k.sum()
    with pytest.raises(ValueError, match="3x3 kernel to 4x4"):
        pad_kernel(k, 4)


def test_multi_branch_block_reparameterizes_to_one_depthwise_conv():
    block = randomize_bn(MultiKernelDW(6, (3, 5, 7)), seed=1).eval()
    assert isinstance(block, Reparameterizable)
    x = torch.randn(1, 6, 15, 15)
    deployed = block.reparameterize()
    assert isinstance(deployed, nn.Conv2d) and deployed.kernel_size == (7, 7) and deployed.groups == 6
    with torch.no_grad():
        assert (deployed(x) - block(x)).abs().max().item() <= 1e-5


def test_reparameterize_whole_model_is_equivalent_and_leaves_training_model_alone():
    net = tiny_sod(0).train()
    before = copy.deepcopy(net.state_dict())
    deployed = reparameterize(net)
    assert net.training and not deployed.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    assert count_batchnorm(net) == 6 and count_batchnorm(deployed) == 0
    assert not any(isinstance(m, MultiKernelDW) for m in deployed.modules())
    net.eval()
    with torch.no_grad():
        diff = (deployed(X) - net(X)).abs().max().item()
    assert diff <= 1e-5
    # fewer parameters: 3 depthwise branches + BNs collapse into one conv with bias
    assert sum(p.numel() for p in deployed.parameters()) < sum(p.numel() for p in net.parameters())
