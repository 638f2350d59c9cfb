"""A cell-searched backbone under the iNAS SOD head: space, supernet, training, LUT blocks, export.

The shipped space ``inas-tiny-cells`` stacks a 2-node genotype (every op kind, incl. a stride-2
skip = FactorizedReduce) into the 5-level pyramid; only the head and the resolution are searched.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from hwnas.arch import Arch, StageArch
from hwnas.errors import ArchError, SpaceError
from hwnas.space import SPACES_DIR, SearchSpace, create

GENOTYPE = SPACES_DIR / "inas-tiny-cells.genotype.json"


@pytest.fixture(scope="module")
def space():
    return create("inas-tiny-cells")


def _randomize_bn(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BN statistics so that folding is actually tested."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net


# ----------------------------------------------------------------------------------- space
def test_space_fixes_the_backbone_and_searches_the_head(space):
    from hwnas.cells.backbone import CellBackbone
    from hwnas.cells.genotype import load_genotype

    assert space.stages == () and space.stem_widths == (8,)
    assert space.backbone.widths == (8, 16, 32, 64, 128)
    assert CellBackbone(load_genotype(GENOTYPE), 4, 1, stem_channels=8).out_channels == (8, 16, 32, 64, 128)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(20)] + [space.smallest(), space.largest()]
    assert all(a.stages == () and a.stem_width == 8 for a in archs)
    assert len({(a.transport, a.decoder) for a in archs}) == len(archs)  # the head does vary
    for a in archs[:3]:
        assert Arch.from_string(a.to_string()) == a and Arch.from_json(a.to_json()) == a
    with pytest.raises(ArchError, match="fixed cell backbone; stages must be empty"):
        space.validate(Arch(64, 8, (StageArch(8, ((3,),)),), archs[0].transport, archs[0].decoder))
    with pytest.raises(ArchError, match=r"stem_width=12 .* allowed: \[8\]"):
        space.validate(Arch(64, 12, (), archs[0].transport, archs[0].decoder))
    # the MBConv spaces still demand their stages
    tiny = create("inas-tiny")
    with pytest.raises(ArchError, match="has 7 stages, the architecture 0"):
        tiny.validate(Arch(64, 8, (), archs[0].transport, archs[0].decoder))


def test_genotype_content_not_path_enters_the_hash(space, tmp_path):
    import yaml

    cfg = yaml.safe_load((SPACES_DIR / "inas-tiny-cells.yaml").read_text())
    g = json.loads(GENOTYPE.read_text())
    # same content elsewhere, other meta: same space
    g_other_meta = dict(g, meta={"method": "copied"})
    (tmp_path / "g.json").write_text(json.dumps(g_other_meta))
    same = SearchSpace({**cfg, "backbone": {**cfg["backbone"], "genotype": str(tmp_path / "g.json")}})
    assert same.hash == space.hash
    # one op changed: another space
    g_changed = json.loads(GENOTYPE.read_text())
    g_changed["normal"][0][0][0] = "sep_conv_5x5"
    other = SearchSpace({**cfg, "backbone": {**cfg["backbone"], "genotype": g_changed}})
    assert other.hash != space.hash and other.backbone.genotype_hash != space.backbone.genotype_hash
    # the stored config is self-contained (checkpoints rebuild the space from it, without the file)
    assert isinstance(space.config["backbone"]["genotype"], dict)
    assert SearchSpace(json.loads(json.dumps(space.config))).hash == space.hash


def test_create_derives_a_cells_space_from_a_builtin_head(tmp_path):
    shutil.copy(GENOTYPE, tmp_path / "geno.json")
    sp = create(f"inas-tiny:cells={tmp_path / 'geno.json'}:channels=4:stem_channels=8")
    base = create("inas-tiny")
    assert sp.name == "inas-tiny+cells" and sp.head.channels == base.head.channels
    assert sp.resolutions == base.resolutions and sp.backbone.channels == 4
    with pytest.raises(SpaceError, match="bad option 'chanels=4'"):
        create(f"inas-tiny:cells={tmp_path / 'geno.json'}:chanels=4")
    with pytest.raises(SpaceError, match="does not exist"):
        create(f"inas-tiny:cells={tmp_path / 'missing.json'}")
    with pytest.raises(SpaceError, match="backbone.type 'resnet' unknown; allowed: mbconv, cells"):
        SearchSpace({**base.config, "backbone": {"type": "resnet"}})


# ---------------------------------------------------------------------- supernet and deploy
def test_supernet_subnet_and_deploy_form_match(space):
    from deploy.reparam import count_batchnorm
    from hwnas.model import for_export
    from hwnas.supernet import Supernet

    torch.manual_seed(0)
    sn = _randomize_bn(Supernet(space), 1).eval()
    x = torch.randn(2, 3, 64, 64)
    for arch in (space.smallest(64), space.sample(5, resolution=64)):
        sn.set_active(arch)
        with torch.no_grad():
            ys = sn(x)
            net = sn.subnet(arch).eval()
            zs = net(x)
            assert [tuple(y.shape) for y in ys] == [(2, 1, 64, 64)] * 5
            assert max((y - z).abs().max().item() for y, z in zip(ys, zs)) == 0.0
            deployed = for_export(net)
            assert count_batchnorm(deployed) == 0  # FactorizedReduce's BN folded too
            # randomised BN makes logits of ~100: compare the folded backbone relatively, the output absolutely
            for ref, got in zip(net.backbone(x), deployed.backbone(x)):
                assert (ref - got).abs().max().item() <= 1e-5 * ref.abs().max().item()
            assert (deployed(x) - torch.sigmoid(zs[0])).abs().max().item() <= 1e-4
    # every arch shares the one backbone: its weights are in the subnet verbatim
    assert torch.equal(net.backbone.stem[0].weight, sn.backbone.stem[0].weight)


def test_sandwich_training_updates_backbone_and_head(tmp_path):
    from hwnas.checkpoint import load_supernet
    from hwnas.data.synth import write_synthetic
    from hwnas.supernet_training import TrainConfig, Trainer, train

    write_synthetic(tmp_path / "data", n=8, seed=0, size=64, val_fraction=0.25)
    cfg = TrainConfig(space="inas-tiny-cells", data=str(tmp_path / "data"), out=str(tmp_path / "run"), steps=1,
                      batch_size=2, resolutions=[64], progress=False, warmup_steps=1, num_random=1)
    t = Trainer(cfg)
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    images, masks = next(iter(t._loader(0, 1)))
    row = t.train_step(images, masks)
    assert row["loss"] == pytest.approx(row["loss_largest"] + row["loss_smallest"] + row["loss_random"])
    changed = {k for k, v in t.net.state_dict().items() if not torch.equal(v, before[k])}
    for part in ("backbone.", "transport.", "decoder.", "heads."):
        assert any(k.startswith(part) for k in changed), part
    # the CLI's path: train() writes a checkpoint whose stored space rebuilds without the YAML/genotype files
    summary = train(cfg)
    assert summary["steps"] == 1 and summary["space_hash"] == create("inas-tiny-cells").hash
    reloaded = load_supernet(tmp_path / "run" / "supernet.pt")
    assert reloaded.space.hash == summary["space_hash"] and reloaded.space.backbone.type == "cells"


# --------------------------------------------------------------------------------- LUT blocks
def test_blocks_cover_the_arch_and_the_cells_block_is_the_pyramid(space):
    from hwnas.blocks import arch_block_paths

    arch = space.sample(2, resolution=64)
    paths = arch_block_paths(space, arch)
    (cells, path), rest = paths[0], paths[1:]
    assert path == "backbone" and cells.kind == "cells"
    assert cells.key == f"cells r64 g{space.backbone.genotype_hash} c4 n1 s8"
    assert all(b.kind in ("branch", "fusion", "head") for b, _ in rest)
    levels = cells.build()(torch.randn(*cells.input_shapes[0]))
    assert [tuple(t.shape) for t in levels] == [(1, w, 64 // 2**i, 64 // 2**i)
                                                for i, w in enumerate(space.backbone.widths, 1)]
    # transport branches read the backbone's level widths
    t1 = [b for b, p in rest if p.startswith("transport.0.branches.")]
    assert {b.input_shapes[0][1] for b in t1} <= set(space.backbone.widths)
    every = {b.key for b in space.all_blocks([64])}
    rng = random.Random(1)
    for a in [space.smallest(64), space.largest(64)] + [space.sample(rng, resolution=64) for _ in range(10)]:
        assert {b.key for b in space.blocks(a)} <= every


def test_lut_build_measures_the_cells_block(space, tmp_path):
    import profilers
    from lut.build import build
    from lut.table import LatencyTable
    from profilers.stats import Protocol

    fast = Protocol(warmup_runs=10, warmup_s=0.2, runs=10, min_time_s=0.0, max_attempts=1)
    profiler = profilers.get("onnxruntime-cpu", threads=1, protocol=fast, exporter="torchscript")
    arch = space.smallest(64)
    blocks = space.blocks(arch)[:2]  # the cells block and one branch
    build(blocks, profiler, tmp_path / "t.parquet", {"name": space.name, "hash": space.hash}, resolutions=[64],
          progress=False)
    table = LatencyTable.read(tmp_path / "t.parquet")
    assert table.metadata["space"]["hash"] == space.hash
    assert table.median_ms(blocks[0].key) > 0.0
    # the whole 5-level backbone costs more than one 1x1-conv branch
    assert table.median_ms(blocks[0].key) > table.median_ms(blocks[1].key)


# ------------------------------------------------------------------------------------ export
def test_onnx_export_parity(space, tmp_path):
    import deploy
    from hwnas.model import SODNet, for_export

    torch.manual_seed(0)
    arch = space.sample(3, resolution=64)
    deployed = for_export(_randomize_bn(SODNet(space, arch), 2).eval())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    (row,) = deploy.export(deployed, (x,), "onnx", tmp_path, {"space": space.name, "space_hash": space.hash})
    assert row.status == "passed", row.message
    assert row.parity["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_executorch_export_is_fully_delegated(space, tmp_path):
    import deploy
    from hwnas.model import SODNet, for_export

    torch.manual_seed(0)
    deployed = for_export(_randomize_bn(SODNet(space, space.largest(64)), 3).eval())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    (row,) = deploy.export(deployed, (x,), "executorch", tmp_path, {})
    assert row.status == "passed", row.message
    assert row.parity["max_abs_diff"] <= 1e-4
    assert row.details["delegation"]["non_delegated_ops"] == {}
