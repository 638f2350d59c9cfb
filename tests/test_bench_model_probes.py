"""The model surgery of bench/model_cuts.py and bench/block_insertion.py, on a real exported model:
a model cut in two recomposes to itself in ONNX Runtime, and inserted copies are really in the
graph, whole model or context graph (and keep the output shape)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
onnx = pytest.importorskip("onnx", reason="onnx not installed")


def _smallest(space_name: str = "inas-tiny", res: int = 64):
    from hwnas.space import create

    space = create(space_name)
    return space, space.smallest(res)


def _export(module, inputs, path: Path) -> Path:
    from profilers.onnxruntime_cpu import OnnxRuntimeCPU

    return Path(OnnxRuntimeCPU(threads=1, exporter="torchscript").export(module, inputs, path))  # fast, keeps weight names


def _run(path: Path, feeds: dict) -> dict:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})))


def test_a_model_cut_in_two_recomposes_to_itself(tmp_path):
    from hwnas.cli.lut import _whole_model
    from model_cuts import CUTS, cut_models

    space, arch = _smallest()
    module, inputs = _whole_model(space, arch)
    full = _export(module, inputs, tmp_path / "m.onnx")
    x = inputs[0].numpy()
    in_name = onnx.load(str(full)).graph.input[0].name
    want = next(iter(_run(full, {in_name: x}).values()))
    cuts = cut_models(full, tmp_path)
    assert set(cuts) == set(CUTS)
    for cut, (pre, suf, crossing) in cuts.items():
        mid = _run(pre, {in_name: x})
        assert len(mid) == crossing >= 1, cut
        got = next(iter(_run(suf, mid).values()))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"cut at {cut}")


def test_block_insertion_puts_its_copies_into_the_model(tmp_path):
    from block_insertion import KINDS, in_context_pair, insertable, with_copies

    from hwnas.blocks import arch_block_paths, space_blocks
    from hwnas.cli.lut import _whole_model

    space, arch = _smallest()
    keys = {b.key for b in space_blocks(space, [64])}
    sites = {}
    for spec, path in arch_block_paths(space, arch):
        extra = insertable(spec, keys, {})
        if extra is not None:
            sites.setdefault(spec.kind, (path, extra))
    assert set(sites) == set(KINDS)  # the smallest model has a site of every kind
    module, inputs = _whole_model(space, arch)
    base = onnx.load(str(_export(module, inputs, tmp_path / "m.onnx"))).graph
    convs = sum(n.op_type == "Conv" for n in base.node)
    for kind, (path, extra) in sites.items():
        block_convs = sum(1 for m in extra.build().modules() if type(m).__name__ == "Conv2d")
        m, x = with_copies(space, arch, path, extra, copies=2, seed=0)
        g = onnx.load(str(_export(m, x, tmp_path / f"m-{kind}.onnx"))).graph
        assert sum(n.op_type == "Conv" for n in g.node) == convs + 2 * block_convs, kind
        out = next(iter(_run(tmp_path / f"m-{kind}.onnx", {g.input[0].name: x[0].numpy()}).values()))
        assert out.shape == (1, 1, 64, 64)
        # the same copies in the block's context graph: the twice graph holds them too, same output shape
        graphs = {}
        for arm, (cm, cx) in in_context_pair(extra, copies=2).items():
            path_arm = _export(cm, cx, tmp_path / f"ctx-{kind}-{arm}.onnx")
            graphs[arm] = onnx.load(str(path_arm)).graph
            feeds = {i.name: t.numpy() for i, t in zip(graphs[arm].input, cx)}
            graphs[arm + "-shape"] = next(iter(_run(path_arm, feeds).values())).shape
        assert (sum(n.op_type == "Conv" for n in graphs["twice"].node)
                == sum(n.op_type == "Conv" for n in graphs["once"].node) + 2 * block_convs), kind
        assert graphs["twice-shape"] == graphs["once-shape"], kind
