"""The export-format registry: a new format is one module plus one registration.

The toy format below (a TorchScript trace, proven by running it in ``torch.jit``) is registered
only in this file; ``deploy.export``, the manifest and ``hwnas export`` take it with no other edit.
"""

import json
import os

import pytest
import torch
import torch.nn as nn

from deploy.errors import ExportError


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def _export_toy(model, example_inputs, target, *, precision, out_dir):
    with torch.no_grad():
        traced = torch.jit.trace(model, example_inputs)
    traced.save(str(target))
    (out_dir / "toy.txt").write_text("a companion file\n")
    return {"toy_precision": precision}


def _check_toy(path, reference, inputs, tolerance):
    from deploy.parity import compare, flatten_outputs

    with torch.no_grad():
        out = torch.jit.load(str(path))(*inputs)
    return compare("torchscript", reference, flatten_outputs(out), tolerance)


def _export_half_then_fail(model, example_inputs, target, *, precision, out_dir):
    target.write_bytes(b"half")
    raise RuntimeError("toolchain crashed\nwith a second line")


@pytest.fixture
def toy():
    from deploy.formats import Format, register, unregister

    fmt = register(Format("toy", "model.ts", _export_toy, _check_toy, aliases=("ts",), precisions=("fp32", "int8"),
                          extra="toy", companions=("toy.txt",), runtime="torchscript"))
    broken = register(Format("broken", "model.broken", _export_half_then_fail, _check_toy))
    yield fmt
    unregister(fmt.name)
    unregister(broken.name)


def test_toy_format_is_one_registration(toy, tmp_path):
    import deploy
    from deploy.formats import names
    from deploy.manifest import read_manifest

    assert "toy" in names() and deploy.parse_formats("TS,toy") == ["toy"]
    (r,) = deploy.export(_Tiny(), (torch.randn(1, 3, 8, 8),), "ts", tmp_path, {}, precision="toy=int8")
    assert r.status == "passed" and r.parity["runtime"] == "torchscript" and r.parity["max_abs_diff"] == 0.0
    assert r.details == {"precision": "int8", "toy_precision": "int8"}
    (row,) = read_manifest(tmp_path)["artifacts"]
    assert row["file"] == "model.ts" and row["companions"][0]["file"] == "toy.txt"


def test_toy_format_failure_leaves_nothing_and_names_format(toy, tmp_path):
    import deploy

    (tmp_path / "model.onnx").write_bytes(b"x")  # another format's file is not touched
    r_broken, r_toy = deploy.export(_Tiny(), (torch.randn(1, 3, 8, 8),), "broken,toy", tmp_path, {})
    assert r_broken.status == "failed" and r_broken.message == "broken: unexpected RuntimeError: toolchain crashed"
    assert r_toy.status == "passed"  # one failure never stops the others
    assert sorted(os.listdir(tmp_path)) == ["manifest.json", "model.onnx", "model.ts", "toy.txt"]


def test_toy_format_through_the_cli(toy, tmp_path, capsys):
    from hwnas.cli import main

    out = tmp_path / "exp"
    assert main(["export", "--space", "inas-tiny", "--arch", "smallest", "--formats", "toy", "--out", str(out)]) == 0
    assert "toy" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["artifacts"][0]["status"] == "passed"
    assert main(["export", "--space", "inas-tiny", "--arch", "smallest", "--formats", "toy",
                 "--precision", "toy=fp64", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "toy: precision 'fp64' not supported; allowed: ['fp32', 'int8']" in err and "Traceback" not in err


def test_registry_refuses_clashes_and_missing_toolchain_names_the_extra(tmp_path):
    from deploy.formats import Format, get, register, unregister

    with pytest.raises(ValueError, match="already registered"):
        register(Format("onnx", "x.onnx", _export_toy, _check_toy))
    with pytest.raises(ValueError, match="alias"):
        register(Format("onnx2", "x.onnx", _export_toy, _check_toy, aliases=("pte",)))

    def needs_missing(model, example_inputs, target, *, precision, out_dir):
        import hwnas_no_such_toolchain  # noqa: F401

    register(Format("missing", "m.bin", needs_missing, _check_toy, extra="missing"))
    try:
        import deploy

        (r,) = deploy.export(_Tiny(), (torch.randn(1, 3, 8, 8),), "missing", tmp_path, {})
        assert r.status == "failed" and r.message.startswith("missing: toolchain not installed (")
        assert r.message.endswith("pip install 'hwnas[missing]'")
    finally:
        unregister("missing")
    with pytest.raises(ExportError, match="unknown export format 'missing'"):
        get("missing")


def test_cli_typo_lists_every_registered_format(toy, capsys):
    from deploy.formats import names
    from hwnas.cli import main

    assert main(["export", "--space", "inas-tiny", "--arch", "smallest", "--formats", "zzz", "--out", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert f"(allowed: {', '.join(names())})" in err and "toy" in err


def test_every_exporter_lives_in_deploy():
    """Profilers call deploy's exporters; none converts a model with torch.onnx / torch.export /
    litert_torch / openvino itself."""
    import ast
    from pathlib import Path

    converters = {"torch.onnx.export", "torch.export.export", "torch.export.save", "litert_torch.convert",
                  "openvino.convert_model", "ov.convert_model", "ov.save_model"}
    root = Path(__file__).resolve().parents[1] / "profilers"
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in converters, f"{path.name}:{node.lineno} calls {ast.unparse(node.func)}"
