"""LUT block decomposition: coverage of the space, honesty of the decomposition, key stability."""

import random
from collections import Counter

import pytest
import torch

from deploy.reparam import count_batchnorm
from hwnas.blocks import arch_block_paths, arch_blocks, space_blocks
from hwnas.errors import ArchError
from hwnas.model import SODNet, for_export
from hwnas.space import create

# distinct blocks per resolution (every resolution of a space has the same count), by kind;
# regression guard for the enumeration — see the module docstring of hwnas.blocks for the keys
EXPECTED_PER_RESOLUTION = {
    "inas-tiny": {"stem": 2, "mbconv": 84, "branch": 54, "fusion": 108, "head": 1},  # 249
    "inas-sod": {"stem": 3, "mbconv": 656, "branch": 124, "fusion": 144, "head": 1},  # 928
}


@pytest.mark.parametrize("name", ["inas-tiny", "inas-sod"])
def test_space_blocks_cover_every_sampled_arch(name):
    space = create(name)
    blocks = space_blocks(space, space.resolutions)
    keys = [b.key for b in blocks]
    assert len(keys) == len(set(keys))
    assert keys == [b.key for b in space_blocks(space, space.resolutions)]  # deterministic order
    for res in space.resolutions:
        assert dict(Counter(b.kind for b in space_blocks(space, [res]))) == EXPECTED_PER_RESOLUTION[name]
    known = set(keys)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(400)] + [space.smallest(r) for r in space.resolutions] + [space.largest(r) for r in space.resolutions]
    for arch in archs:
        missing = {b.key for b in arch_blocks(space, arch)} - known
        assert not missing, f"{arch}: {sorted(missing)[:3]}"


def test_space_delegates_and_validates(tiny_space):
    arch = tiny_space.sample(0)
    assert [b.key for b in tiny_space.blocks(arch)] == [b.key for b in arch_blocks(tiny_space, arch)]
    assert len(tiny_space.all_blocks([64])) == 249
    with pytest.raises(ArchError, match="resolution"):
        tiny_space.all_blocks([65])


def test_keys_readable_and_smsu_keyed_by_largest_kernel(tiny_space):
    arch = tiny_space.largest(64)
    keys = [b.key for b in arch_blocks(tiny_space, arch)]
    assert keys[0] == "stem r64>32 c3>12 k3 s2"
    assert "mbconv r16>8 c16>24 e3 s2 k7 se0.25" in keys  # stage 3, kernels {3,5,7} → k7
    assert keys[-1] == "head r32>64 c8 sigmoid"
    assert "fusion r32 c8 n5 u2 k7" in keys and "fusion r2 c32 n1 u1 k7" in keys
    assert "branch r2>32 c80>8 up16" in keys and "branch r32>2 c8>32 down16" in keys


@pytest.mark.parametrize("name, seeds", [("inas-tiny", (0, 1, 2)), ("inas-sod", (0,))])
def test_blocks_reproduce_the_exported_model_piece_by_piece(name, seeds):
    """Every block, given the exported model's weights and the inputs its piece saw, reproduces that
    piece's output exactly; input shapes match; the blocks own every parameter of the model."""
    space = create(name)
    for seed in seeds:
        arch = space.sample(seed, resolution=min(space.resolutions))
        model = for_export(SODNet(space, arch))
        pairs = arch_block_paths(space, arch)
        seen = {}
        hooks = [model.get_submodule(p).register_forward_hook(lambda m, i, o, p=p: seen.__setitem__(p, (i, o))) for _, p in pairs]
        x = torch.randn(1, 3, arch.resolution, arch.resolution)
        with torch.no_grad():
            y = model(x)
        for h in hooks:
            h.remove()
        assert len({p for _, p in pairs}) == len(pairs) == len(seen)
        for spec, path in pairs:
            block = spec.build()
            assert count_batchnorm(block) == 0
            block.load_state_dict(model.get_submodule(path).state_dict())  # strict: same structure
            inputs, output = seen[path]
            assert tuple(tuple(t.shape) for t in inputs) == spec.input_shapes, (path, spec.key)
            with torch.no_grad():
                assert torch.equal(block(*inputs), output), (path, spec.key)
        assert torch.equal(seen["head"][1], y)
        owned = {f"{p}.{n}" for _, p in pairs for n, _ in model.get_submodule(p).named_parameters()}
        assert owned == {n for n, _ in model.named_parameters()}


def test_every_tiny_block_builds_and_runs():
    space = create("inas-tiny")
    for spec in space_blocks(space, [64]):
        block = spec.build()
        assert not block.training and count_batchnorm(block) == 0
        with torch.no_grad():
            out = block(*spec.example_inputs())
        assert torch.isfinite(out).all(), spec.key
