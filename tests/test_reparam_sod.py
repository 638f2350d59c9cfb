"""Deploy form (re-parameterized) of static SOD networks equals their training form in eval mode."""

import copy
import random

import pytest
import torch
import torch.nn as nn

from deploy.reparam import count_batchnorm, reparameterize
from hwnas.model import SODNet, for_export
from hwnas.ops import SMSU
from hwnas.space import create


def randomize_bn_(model: nn.Module, seed: int) -> None:
    """Random BN running stats AND affine params: default BN (mean 0, var 1, γ 1, β 0) hides folding errors."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def assert_deploy_form(deployed: nn.Module) -> None:
    assert count_batchnorm(deployed) == 0
    assert not any(isinstance(m, SMSU) for m in deployed.modules())
    depthwise = [m for m in deployed.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.bias is not None and m.groups == m.in_channels for m in depthwise)


def test_smsu_merges_four_branches_into_one_depthwise_conv():
    smsu = SMSU(16, (3, 5, 7, 9), stride=2)
    randomize_bn_(smsu, 0)
    smsu.eval()
    x = torch.randn(2, 16, 20, 20)
    fused = smsu.reparameterize()
    assert isinstance(fused, nn.Conv2d) and fused.kernel_size == (9, 9) and fused.stride == (2, 2)
    with torch.no_grad():
        assert (fused(x) - smsu(x)).abs().max() <= 1e-6


@pytest.mark.parametrize("name, n_archs", [("inas-tiny", 20), ("inas-sod", 5)])
def test_deploy_form_equals_training_form(name, n_archs):
    """Final map: max |diff| <= 1e-5 absolute. All 5 maps: <= 1e-5 relative to the map's largest
    logit (the coarse deep-supervision maps reach |logit| ~ 15 with random weights, where fp32
    rounding alone is ~1e-6 relative; the float64 test below shows the transformation is exact)."""
    space = create(name)
    rng = random.Random(0)
    worst_final, worst_all, worst_rel = 0.0, 0.0, 0.0
    for i in range(n_archs):
        arch = space.sample(rng, resolution=min(space.resolutions))
        net = SODNet(space, arch)
        randomize_bn_(net, i)
        net.eval()
        x = torch.randn(1, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(i))
        deployed = reparameterize(net)
        assert_deploy_form(deployed)
        with torch.no_grad():
            ref, got = net(x), deployed(x)
        worst_final = max(worst_final, (ref[0] - got[0]).abs().max().item())
        for r, o in zip(ref, got):
            diff = (r - o).abs().max().item()
            worst_all = max(worst_all, diff)
            worst_rel = max(worst_rel, diff / max(1.0, r.abs().max().item()))
    print(f"{name}: {n_archs} archs, max |deploy - train|: final map {worst_final:.3g}, "
          f"all maps {worst_all:.3g} (relative {worst_rel:.3g})")
    assert worst_final <= 1e-5
    assert worst_rel <= 1e-5


def test_deploy_form_is_exact_in_float64(tiny_space):
    arch = tiny_space.largest(64)
    net = SODNet(tiny_space, arch).double()
    randomize_bn_(net, 0)
    net.eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        worst = max((a - b).abs().max().item() for a, b in zip(net(x), reparameterize(net)(x)))
    print(f"float64 max |deploy - train| = {worst:.3g}")
    assert worst <= 1e-12


def test_for_export_leaves_the_training_net_untouched(tiny_space):
    net = SODNet(tiny_space, tiny_space.sample(0))
    state = copy.deepcopy(net.state_dict())
    exported = for_export(net)
    assert_deploy_form(exported)
    assert net.training and count_batchnorm(net) > 0
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
