import json
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwnas.arch import Arch, LevelArch, StageArch, load_arch
from hwnas.errors import ArchError, SpaceError
from hwnas.space import SearchSpace, create, decoder_input_choices, transport_input_choices

SPACES = ["inas-tiny", "inas-sod"]


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_json_and_string_round_trip(name, seed):
    sp = create(name)
    arch = sp.sample(seed)
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_string(arch.to_string()) == arch
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert sp.contains(arch)


@pytest.mark.parametrize("name", SPACES)
def test_extremes_and_sampling_bounds(name):
    sp = create(name)
    lo, hi = sp.smallest(), sp.largest()
    assert lo.resolution == min(sp.resolutions) and hi.resolution == max(sp.resolutions)
    assert all(s.depth == min(spec.depths) for s, spec in zip(lo.stages, sp.stages))
    assert all(s.depth == max(spec.depths) for s, spec in zip(hi.stages, sp.stages))
    assert [lv.inputs for lv in hi.transport] == [(1, 2, 3, 4, 5)] * 5
    assert [lv.inputs for lv in lo.transport] == [(i,) for i in range(1, 6)]
    assert [lv.inputs for lv in lo.decoder] == [(1, 2), (2, 3), (3, 4), (4, 5), (5,)]
    rng = random.Random(0)
    seen_depths = {s.depth for _ in range(200) for s in sp.sample(rng).stages}
    assert seen_depths == {d for spec in sp.stages for d in spec.depths}


def test_input_choices_match_thesis_fusion_counts():
    # thesis table 3.2: transport 1-5 inputs per level; decoder level 1: 2-5, 2: 2-4, 3: 2-3, 4: 2, 5: 1
    for level in range(1, 6):
        assert {len(c) for c in transport_input_choices(level)} == {1, 2, 3, 4, 5}
    counts = [{len(c) for c in decoder_input_choices(level)} for level in range(1, 6)]
    assert counts == [{2, 3, 4, 5}, {2, 3, 4}, {2, 3}, {2}, {1}]


def test_validation_names_field_and_allowed_values(tiny_space):
    arch = tiny_space.sample(0)
    bad = Arch(arch.resolution, arch.stem_width, (StageArch(999, arch.stages[0].kernel_sizes),) + arch.stages[1:], arch.transport, arch.decoder)
    with pytest.raises(ArchError, match=r"stages\[1\]\.width=999 .*allowed: \[8\]"):
        tiny_space.validate(bad)
    bad = Arch(arch.resolution, arch.stem_width, arch.stages, (LevelArch((2, 3), (3,)),) + arch.transport[1:], arch.decoder)
    with pytest.raises(ArchError, match=r"transport\[1\]\.inputs=\[2, 3\]"):
        tiny_space.validate(bad)
    bad = Arch(123, arch.stem_width, arch.stages, arch.transport, arch.decoder)
    with pytest.raises(ArchError, match=r"resolution=123 .*allowed: \[64, 96\]"):
        tiny_space.validate(bad)
    ks = list(arch.stages[2].kernel_sizes)
    ks[0] = (3, 9)
    bad = Arch(arch.resolution, arch.stem_width, arch.stages[:2] + (StageArch(arch.stages[2].width, tuple(ks)),) + arch.stages[3:], arch.transport, arch.decoder)
    with pytest.raises(ArchError, match=r"stages\[3\]\.kernel_sizes\[1\]=\[3, 9\]"):
        tiny_space.validate(bad)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "malformed"),
        ('{"resolution": 64}', "missing field"),
        ("r64_c8_b[8:3]", "does not match"),
        ('[1, 2]', "expected a JSON object"),
    ],
)
def test_malformed_arch_input(text, match):
    with pytest.raises(ArchError, match=match):
        load_arch(text)


def test_space_errors(tmp_path):
    with pytest.raises(SpaceError, match="did you mean 'inas-tiny'"):
        create("inas-tny")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nresolutions: [64\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        SearchSpace.from_yaml(bad)
    bad.write_text("name: x\nresolutions: [64]\n")
    with pytest.raises(SpaceError, match="missing top-level key 'head'"):
        SearchSpace.from_yaml(bad)


def test_hash_is_content_based(tmp_path):
    a, b = create("inas-tiny"), create("inas-sod")
    assert a.hash != b.hash and a.hash == create("inas-tiny").hash
    copy = tmp_path / "copy.yaml"
    copy.write_text((a.source and open(a.source).read()).replace("[64, 96]", "[64]"))
    assert SearchSpace.from_yaml(copy).hash != a.hash


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True)


def test_cli_space_sample_and_validate(tmp_path):
    r = run_cli("space", "sample", "inas-tiny", "--n", "3", "--seed", "7")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    path = tmp_path / "a.json"
    path.write_text(lines[0])
    r = run_cli("space", "validate", "inas-tiny", str(path))
    assert r.returncode == 0 and r.stdout.startswith("ok:")
    r = run_cli("space", "validate", "inas-sod", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not in space inas-sod" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
