"""The backbone interface (hwnas.backbones): a new backbone is one class, registered, plus its tests.

A toy backbone registered only here walks every place a backbone is used — space loading and
hashing, sampling and validation, the static network, the supernet and its subnets, the latency
table's blocks, the deploy form — without any other file knowing about it.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from hwnas import backbones
from hwnas.arch import Arch, StageArch
from hwnas.backbones import FixedBackbone
from hwnas.errors import ArchError, SpaceError
from hwnas.space import SearchSpace


class ToyPyramid(nn.Module):
    """Five stride-2 conv+BN+ReLU layers; level i is the output of layer i."""

    def __init__(self, width: int):
        super().__init__()
        self.out_channels = tuple(width * 2**i for i in range(5))
        layers, cin = [], 3
        for c in self.out_channels:
            layers.append(nn.Sequential(nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            cin = c
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class ToyBackbone(FixedBackbone):
    """The whole of a new fixed backbone: parse, widths, build, block key."""

    type = "toy"
    describe = "toy"

    def __init__(self, width: int):
        self.width = width
        self.stem_channels = width

    @classmethod
    def from_config(cls, config, source, base_dir):
        return cls(int(config["backbone"].get("width", 4))), config

    @property
    def widths(self):
        return tuple(self.width * 2**i for i in range(5))

    def build(self):
        return ToyPyramid(self.width)

    def block_key(self, resolution):
        return f"toy r{resolution} w{self.width}"


TOY_SPACE = {
    "name": "toy-space",
    "resolutions": [32, 64],
    "backbone": {"type": "toy", "width": 4},
    "head": {"channels": [4, 4, 8, 8, 8], "transport_kernel_sizes": [3, 5], "decoder_kernel_sizes": [3]},
}


@pytest.fixture
def toy_space():
    backbones.register(ToyBackbone)
    try:
        yield SearchSpace(TOY_SPACE, source="toy.yaml")
    finally:
        backbones.unregister("toy")


def test_registry_names_and_refusals():
    assert backbones.names()[:2] == ["mbconv", "cells"]
    with pytest.raises(SpaceError, match="backbone.type 'toy' unknown; allowed: mbconv, cells"):
        SearchSpace(TOY_SPACE, source="toy.yaml")
    with pytest.raises(ValueError, match="already registered"):
        backbones.register(type("Again", (ToyBackbone,), {"type": "cells"}))


def test_toy_backbone_space_and_architectures(toy_space):
    sp = toy_space
    assert isinstance(sp.backbone, ToyBackbone) and sp.stages == () and sp.stem_widths == (4,)
    assert sp.hash == SearchSpace(TOY_SPACE).hash  # content-addressed: the source path does not matter
    rng = random.Random(0)
    archs = [sp.sample(rng) for _ in range(10)] + [sp.smallest(), sp.largest()]
    assert all(a.stages == () and a.stem_width == 4 for a in archs)
    assert len({a.to_string() for a in archs}) > 5  # the head and resolution vary
    with pytest.raises(ArchError, match="fixed toy backbone; stages must be empty"):
        sp.validate(Arch(64, 4, (StageArch(8, ((3,),)),), archs[0].transport, archs[0].decoder))
    with pytest.raises(ArchError, match=r"stem_width=8 .* allowed: \[4\]"):
        sp.validate(Arch(64, 8, (), archs[0].transport, archs[0].decoder))
    # the schema checks a new backbone's space too (its head, its total stride) before anything is built
    with pytest.raises(SpaceError, match="resolutions: 48 is not divisible by the network's total stride 32"):
        SearchSpace({**TOY_SPACE, "resolutions": [48]})
    with pytest.raises(SpaceError, match=r"head.channels: expected 5 entries"):
        SearchSpace({**TOY_SPACE, "head": {**TOY_SPACE["head"], "channels": [4, 4, 8, 8]}})


def test_toy_backbone_network_supernet_and_subnet(toy_space):
    from hwnas.model import SODNet, for_export
    from hwnas.supernet import Supernet

    sp = toy_space
    arch = sp.sample(random.Random(1), resolution=64)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    net = SODNet(sp, arch).eval()
    outs = net(x)
    assert len(outs) == 5 and all(o.shape == (2, 1, 64, 64) for o in outs)
    assert isinstance(net.backbone, ToyPyramid)
    torch.manual_seed(0)
    sup = Supernet(sp).eval()
    sup.set_active(arch)
    sub = sup.subnet(arch).eval()
    torch.testing.assert_close(sub(x)[0], sup(x)[0])  # the subnet computes the supernet's active path
    # training the supernet changes the weights the subnet copies: the backbone is shared, not rebuilt
    before = sup.backbone.layers[0][0].weight.clone()
    sup.train()
    sup(x)[0].mean().backward()
    torch.optim.SGD(sup.parameters(), lr=0.1).step()
    assert not torch.equal(before, sup.backbone.layers[0][0].weight)
    torch.testing.assert_close(sup.subnet(arch).backbone.layers[0][0].weight, sup.backbone.layers[0][0].weight)
    dep = for_export(sub)
    prob = dep(x).detach()
    assert prob.shape == (2, 1, 64, 64) and float(prob.min()) >= 0 and float(prob.max()) <= 1
    torch.testing.assert_close(prob, torch.sigmoid(sub(x)[0]), rtol=1e-4, atol=1e-5)  # BN folded, same function


def test_toy_backbone_latency_blocks(toy_space):
    from hwnas.blocks import arch_block_paths

    sp = toy_space
    arch = sp.sample(random.Random(2), resolution=64)
    paths = arch_block_paths(sp, arch)
    first, path = paths[0]
    assert (first.key, first.kind, path, first.model_input) == ("toy r64 w4", "toy", "backbone", True)
    every = {b.key for b in sp.all_blocks([64])}
    assert {b.key for b, _ in paths} <= every
    # transport branches read the toy's level widths
    assert {b.input_shapes[0][1] for b, p in paths if p.startswith("transport") and "branches" in p} <= set(sp.backbone.widths)
    levels = first.build()(*first.example_inputs())
    assert isinstance(levels, tuple) and [t.shape[1] for t in levels] == list(sp.backbone.widths)
    assert [t.shape[-1] for t in levels] == sp.backbone.level_sizes(64)
