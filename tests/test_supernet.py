"""Supernet ↔ static subnet equivalence, weight copying, gradient flow, model contracts."""

import random

import pytest
import torch

from hwnas.errors import ArchError
from hwnas.model import SODNet, for_export
from hwnas.ops import DynamicBatchNorm2d, ElasticSMSU
from hwnas.space import create
from hwnas.supernet import Supernet


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Random BN running stats and affine params, and non-identity kernel transforms, so that a
    wrong slice, a missed copy or a skipped transform cannot hide behind default values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if ".transforms." in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("name, n_archs", [("inas-tiny", 25), ("inas-sod", 20)])
def test_subnet_equals_supernet_active_path(name, n_archs):
    space = create(name)
    net = Supernet(space)
    randomize_(net, 0)
    net.eval()
    res = min(space.resolutions)
    rng = random.Random(1)
    g = torch.Generator().manual_seed(2)
    worst = 0.0
    for _ in range(n_archs):
        arch = space.sample(rng, resolution=res)
        x = torch.randn(1, 3, res, res, generator=g)
        with torch.no_grad():
            net.set_active(arch)
            expected = net(x)
            got = net.subnet(arch).eval()(x)
        assert len(got) == 5
        worst = max(worst, max((a - b).abs().max().item() for a, b in zip(expected, got)))
    print(f"{name}: max |supernet - subnet| over {n_archs} archs = {worst:.3g}")
    assert worst <= 1e-5


def test_subnet_weights_are_copies(tiny_space):
    net = Supernet(tiny_space)
    arch = tiny_space.sample(3)
    sub = net.subnet(arch)
    before = {k: v.clone() for k, v in sub.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in sub.state_dict().items())


def test_supernet_trains_shared_kernel_transforms_and_per_kernel_bns(tiny_space):
    net = Supernet(tiny_space).train()
    arch = tiny_space.largest(64)
    net.set_active(arch)
    x = torch.randn(2, 3, 64, 64)
    loss = sum(o.square().mean() for o in net(x))
    loss.backward()
    smsu = net.stages[2].layers[0].smsu  # kernels {3, 5, 7}: shared 7x7 kernel, transforms for 3 and 5
    assert isinstance(smsu, ElasticSMSU) and smsu.max_kernel == 7
    assert smsu.weight.grad is not None and smsu.weight.grad.abs().sum() > 0
    for k in ("3", "5"):
        assert smsu.transforms[k].grad is not None and smsu.transforms[k].grad.abs().sum() > 0
    for k in ("3", "5", "7"):
        assert smsu.bns[k].weight.grad.abs().sum() > 0
    # an inactive kernel's BN gets no gradient
    net.zero_grad(set_to_none=True)
    small = tiny_space.smallest(64)
    net.set_active(small)
    sum(o.square().mean() for o in net(x)).backward()
    assert smsu.bns["7"].weight.grad is None and smsu.bns["3"].weight.grad.abs().sum() > 0
    # a step changes the shared kernel
    w0 = smsu.weight.detach().clone()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert not torch.equal(w0, smsu.weight)


def test_dynamic_bn_updates_only_active_channels():
    bn = DynamicBatchNorm2d(8, momentum=None).train()
    bn(torch.randn(4, 5, 3, 3) + 3.0)
    assert torch.all(bn.running_mean[:5] > 2.0) and torch.all(bn.running_mean[5:] == 0)


def test_set_active_validates_and_bad_input_size(tiny_space, sod_space):
    net = Supernet(tiny_space)
    with pytest.raises(ArchError, match="not in space inas-tiny"):
        net.set_active(sod_space.sample(0))
    with pytest.raises(ArchError, match="multiples of 32"):
        net(torch.randn(1, 3, 70, 70))


def test_sodnet_and_export_contract(tiny_space):
    arch = tiny_space.sample(5, resolution=96)
    net = SODNet(tiny_space, arch).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        outs = net(x)
        exported = for_export(net)
        prob = exported(x)
    assert [tuple(o.shape) for o in outs] == [(2, 1, 96, 96)] * 5
    assert prob.shape == (2, 1, 96, 96) and 0 <= prob.min() and prob.max() <= 1
    assert (prob - torch.sigmoid(outs[0])).abs().max() <= 1e-5
    assert not exported.training and not hasattr(exported, "heads")  # unused heads are gone
    ep = torch.export.export(exported, (x[:1],))
    assert (ep.module()(x[:1]) - prob[:1]).abs().max() <= 1e-6
