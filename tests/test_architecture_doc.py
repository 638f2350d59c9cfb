"""docs/architecture.md stays true: its "how to add" recipes name things that exist, and the search-space
recipe works step by step (the backbone recipe is walked by tests/test_backbones.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "architecture.md").read_text()

MY_SPACE = """\
name: my-space
resolutions: [32, 64]
stem: {widths: [4, 8]}
stages:
  - {expand_ratio: 1, stride: 1, widths: [4], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 3, stride: 2, widths: [8], depths: [1, 2], kernel_sizes: [3, 5]}
  - {expand_ratio: 3, stride: 2, widths: [8, 12], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 3, stride: 2, widths: [16], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 3, stride: 2, widths: [16], depths: [1], kernel_sizes: [3]}
head:
  level_stages: [1, 2, 3, 4, 5]
  channels: [4, 4, 8, 8, 8]
  transport_kernel_sizes: [3]
  decoder_kernel_sizes: [3, 5]
"""


def test_recipes_have_their_headings_and_name_what_exists():
    import deploy.formats
    import profilers
    from hwnas import backbones

    for heading in ("### … a profiler backend", "### … an export format", "### … a backbone", "### … a search space"):
        assert heading in DOC
    assert callable(backbones.register) and "mbconv" in backbones.BUILT_IN
    for method in ("from_config", "widths", "build", "block_key"):
        assert hasattr(backbones.FixedBackbone, method)
    assert hasattr(deploy.formats, "Format") and hasattr(deploy.formats, "BUILTIN_MODULES")
    assert "onnxruntime-cpu" in profilers.BACKENDS
    # every module the "module by module" table names exists (what is in parentheses are its contents)
    table = DOC.split("## hwnas, module by module")[1].split("## Core types")[0]
    named = []
    for row in table.splitlines()[3:]:
        if row.startswith("|"):
            cell = re.sub(r"\([^)]*\)", "", row.split("|")[2])
            named += re.findall(r"`([\w./*]+)`", cell)
    assert len(named) > 20
    for name in named:
        if name in ("spaces/*.yaml", "cli/*"):
            continue
        path = REPO / "hwnas" / name.replace(".", "/")
        assert path.with_suffix(".py").exists() or path.is_dir(), f"docs/architecture.md names hwnas/{name}"


def test_adding_a_search_space_step_by_step(tmp_path, capsys, monkeypatch):
    import hwnas.space
    from hwnas.cli import main
    from hwnas.errors import SpaceError
    from hwnas.model import SODNet
    from hwnas.space import create, list_spaces

    path = tmp_path / "my-space.yaml"
    path.write_text(MY_SPACE)  # step 1
    assert main(["space", "show", str(path)]) == 0  # step 2
    space = create(str(path))
    assert f"hash={space.hash}" in capsys.readouterr().out
    assert main(["space", "sample", str(path), "--n", "3"]) == 0
    archs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(archs) == 3
    arch = space.sample(0, resolution=32)  # step 3: usable wherever a space is named
    assert SODNet(space, arch).eval()(torch.zeros(1, 3, 32, 32))[0].shape == (1, 1, 32, 32)
    assert {b.key for b in space.blocks(arch)} <= {b.key for b in space.all_blocks([32])}
    built_in = tmp_path / "spaces"
    built_in.mkdir()
    (built_in / "my-space.yaml").write_text(MY_SPACE)
    monkeypatch.setattr(hwnas.space, "SPACES_DIR", built_in)  # as if copied into hwnas/spaces/
    assert "my-space" in list_spaces() and create("my-space").hash == space.hash
    bad = tmp_path / "bad.yaml"  # the schema names a field out of range (step 1)
    bad.write_text(MY_SPACE.replace("stride: 2, widths: [8, 12]", "stride: 0, widths: [8, 12]"))
    with pytest.raises(SpaceError, match=r"stages\[3\]\.stride"):
        create(str(bad))
