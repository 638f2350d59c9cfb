"""Latency tables: storage and identity, prediction and calibration, resumable builds, validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import profilers
from lut import BlockSpec
from lut.build import build, journal_path
from lut.calibrate import apply, fit
from deploy.fileio import IdentityError
from lut.errors import LUTError
from lut.table import LatencyTable, compatibility_problem
from lut.validate import ModelCase, accuracy, spread, validate
from profilers.stats import Protocol

FAST = Protocol(warmup_runs=10, warmup_s=0.2, runs=20, min_time_s=0.0, max_attempts=1)
SPACE = {"name": "synthetic", "hash": "0123456789abcdef"}


def conv_block(cin: int, cout: int, k: int, r: int) -> BlockSpec:
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU()).eval()

    return BlockSpec(f"conv r{r} c{cin}>{cout} k{k}", "conv", ((1, cin, r, r),), make)


def synthetic_blocks() -> list[BlockSpec]:
    return [conv_block(c, c2, k, 16) for c, c2, k in [(4, 8, 3), (8, 8, 3), (8, 8, 5), (8, 16, 3), (16, 16, 1), (16, 8, 3)]]


def ort(threads: int = 1):
    return profilers.get("onnxruntime-cpu", threads=threads, protocol=FAST, exporter="torchscript")


def fake_table(keys, medians, **meta) -> LatencyTable:
    rows = [dict(key=k, kind="conv", input_shapes="1x1x1x1", median_ms=m, mean_ms=m, std_ms=0.0, min_ms=m, p90_ms=m,
                 p99_ms=m, iqr_over_median=0.0, warmup_runs=10, runs=1, attempts=1, unstable=False, samples_ms=[m],
                 measured_at="2026-01-01T00:00:00+00:00") for k, m in zip(keys, medians)]
    device = {"cpu_model": "X", "logical_cores": 2, "gpu_name": None, "gpu_driver": None, "runtime": "onnxruntime",
              "runtime_version": "1.0", "threads": 1, "precision": "fp32"}
    metadata = {"space": SPACE, "device": device, "backend": {"name": "onnxruntime-cpu", "version": "1.0", "settings": {}},
                "protocol": FAST.to_dict(), "resolutions": [16]}
    metadata.update(meta)
    return LatencyTable(rows, metadata)


# ------------------------------------------------------------------------ storage, identity
def test_roundtrip_and_metadata_readable_without_hwnas(tmp_path):
    t = fake_table(["a", "b"], [1.0, 2.5])
    path = t.write(tmp_path / "t.parquet")
    back = LatencyTable.read(path)
    assert back.keys == ["a", "b"] and back.median_ms("b") == 2.5 and back.metadata["space"] == SPACE
    code = ("import json, sys, pyarrow.parquet as pq; m = json.loads(pq.read_schema(sys.argv[1]).metadata[b'hwnas.lut']); "
            "print(m['space']['hash'], m['backend']['name'], 'hwnas' in sys.modules or 'lut' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["0123456789abcdef", "onnxruntime-cpu", "False"]


def test_not_a_table(tmp_path):
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(LUTError, match="without hwnas.lut metadata"):
        LatencyTable.read(tmp_path / "plain.parquet")
    with pytest.raises(LUTError, match="does not exist"):
        LatencyTable.read(tmp_path / "missing.parquet")
    with pytest.raises(LUTError, match="duplicate keys"):
        fake_table(["a", "a"], [1.0, 1.0])


def test_check_compatible_names_the_mismatch():
    t = fake_table(["a"], [1.0])
    t.check_compatible(space_hash=SPACE["hash"], backend="onnxruntime-cpu", device=dict(t.device), protocol=FAST.to_dict())
    with pytest.raises(LUTError, match="space hash 0123456789abcdef, not ffff"):
        t.check_compatible(space_hash="ffff")
    with pytest.raises(LUTError, match="backend onnxruntime-cpu, not tensorrt"):
        t.check_compatible(backend="tensorrt")
    with pytest.raises(LUTError, match="threads: 1 vs 2"):
        t.check_compatible(device=dict(t.device, threads=2))
    with pytest.raises(LUTError, match="cpu_model: 'X' vs 'Y'"):
        t.check_compatible(device=dict(t.device, cpu_model="Y"))
    with pytest.raises(LUTError, match="timing protocol"):
        t.check_compatible(protocol=dict(FAST.to_dict(), runs=99))
    other = fake_table(["a"], [1.0], space={"name": "s2", "hash": "feed"})
    assert "space differs" in compatibility_problem(t.metadata, other.metadata)


def test_a_host_is_told_apart_by_its_cpu_signature_where_the_name_is_the_same():
    """A hypervisor shows every host as "AMD EPYC": the signature and vector extensions differ; a
    fingerprint written before hwnas recorded them is compared on every other field."""
    from profilers.fingerprint import host_info

    here = host_info()
    if here["cpu_signature"] is None:
        pytest.skip("no /proc/cpuinfo signature on this machine")
    zen4 = dict(fake_table(["a"], [1.0]).device, cpu_signature="AuthenticAMD family 25 model 17 stepping 1",
                cpu_vector_extensions="avx avx2 fma avx512f")
    t = fake_table(["a"], [1.0], device=zen4)
    with pytest.raises(LUTError, match="cpu_signature: 'AuthenticAMD family 25 model 17 stepping 1' vs 'AuthenticAMD family 25 model 1"):
        t.check_compatible(device=dict(zen4, cpu_signature="AuthenticAMD family 25 model 1 stepping 1"))
    with pytest.raises(LUTError, match="cpu_vector_extensions"):
        t.check_compatible(device=dict(zen4, cpu_vector_extensions="avx avx2 fma"))
    older = {k: v for k, v in zen4.items() if k not in ("cpu_signature", "cpu_vector_extensions")}
    t.check_compatible(device=older)  # cannot tell: not compared
    with pytest.raises(LUTError, match="cpu_model"):
        t.check_compatible(device=dict(older, cpu_model="Y"))


# --------------------------------------------------------------------- predict, calibrate
def test_predict_is_sum_and_calibration_is_affine():
    t = fake_table(["a", "b", "c"], [1.0, 2.0, 4.0])
    keys = ["a", "b", "b", "c"]  # repeated blocks count each time
    assert t.predict_ms(keys) == 9.0  # no calibration yet: the raw sum
    cal = fit([10.0, 20.0, 40.0, 80.0], [12.5, 23.5, 45.5, 89.5])  # exactly 1.1 x + 1.5
    assert cal["a"] == pytest.approx(1.1) and cal["b_ms"] == pytest.approx(1.5) and cal["fit_mape_pct"] < 1e-9
    tc = t.with_calibration(cal)
    assert tc.predict_ms(keys, calibrated=False) == 9.0
    assert tc.predict_ms(keys) == pytest.approx(1.1 * 9 + 1.5)
    with pytest.raises(LUTError, match="block 'zzz' is not in the latency table"):
        t.predict_ms(["a", "zzz"])
    with pytest.raises(LUTError, match=">= 3 measured models"):
        fit([1.0, 2.0], [1.0, 2.0])


def test_calibration_minimises_relative_error():
    rng = np.random.default_rng(0)
    x = np.linspace(5, 100, 30)
    y = (0.9 * x + 3.0) * (1 + 0.01 * rng.standard_normal(30))
    cal = fit(x, y)
    assert cal["a"] == pytest.approx(0.9, rel=0.03) and cal["b_ms"] == pytest.approx(3.0, abs=0.5)
    assert apply(cal, 50.0) == pytest.approx(cal["a"] * 50 + cal["b_ms"])


def test_auto_calibration_keeps_the_count_term_only_when_it_predicts_better_out_of_sample():
    rng = np.random.default_rng(0)
    n = rng.integers(30, 70, 16).astype(float)
    x = rng.uniform(20, 120, 16)
    # per-block overhead the isolated measurements carried: the count term is real
    y = (1.0 * x - 0.3 * n + 2.0) * (1 + 0.005 * rng.standard_normal(16))
    cal = fit(x, y, n)
    assert cal["kind"] == "affine+count" and cal["c_ms_per_block"] == pytest.approx(-0.3, abs=0.05)
    assert cal["loo_mape_pct"]["affine+count"] < cal["loo_mape_pct"]["affine"]
    # no count effect, noisy measurements: the extra term would fit noise, affine is kept
    y2 = (0.8 * x + 1.0) * (1 + 0.08 * rng.standard_normal(16))
    cal2 = fit(x, y2, n)
    assert cal2["kind"] == "affine" and cal2["loo_mape_pct"]["affine"] <= cal2["loo_mape_pct"]["affine+count"]
    assert fit(x, y2, n, kind="affine+count")["kind"] == "affine+count"  # an explicit kind is obeyed
    assert fit(x[:8], y[:8], n[:8])["kind"] == "affine"  # too few models for the count term


def test_the_reference_speed_is_its_fast_state_not_a_median_that_flips_between_states():
    """A build whose reference windows fall in two speed states (as ``bench/lut_drift.py --seed 30``
    found: ~0.19 and ~0.32 ms): the plain median jumps between the states as their shares cross a
    half, the table's reference speed stays in the fast one; on a steady machine it is the median."""
    from lut.table import reference_speed_ms

    rng = np.random.default_rng(0)
    for n_fast in (110, 126, 139):
        ref = np.concatenate([0.19 * (1 + 0.02 * rng.random(n_fast)), 0.32 * (1 + 0.05 * rng.random(249 - n_fast))])
        assert 0.19 <= reference_speed_ms(ref) <= 0.19 * 1.02
    assert np.median(np.r_[np.full(110, 0.19), np.full(139, 0.32)]) == 0.32  # what the median did
    steady = 0.2 * (1 + 0.1 * rng.random(249))
    assert reference_speed_ms(steady) == pytest.approx(float(np.median(steady)))


def test_accuracy_metrics_on_known_values():
    measured = [10.0, 20.0, 40.0, 80.0]
    predicted = [10.4, 19.0, 40.0, 90.0]  # +4 %, -5 %, 0 %, +12.5 %
    a = accuracy(predicted, measured)
    assert a["mape_pct"] == pytest.approx((4 + 5 + 0 + 12.5) / 4)
    assert a["rmspe_pct"] == pytest.approx(np.sqrt((16 + 25 + 0 + 156.25) / 4))
    assert a["within_5_pct"] == 75.0 and a["within_10_pct"] == 75.0 and a["max_ape_pct"] == pytest.approx(12.5)
    assert a["mean_signed_pct"] == pytest.approx((4 - 5 + 0 + 12.5) / 4)
    assert a["kendall_tau"] == pytest.approx(1.0) and a["spearman_rho"] == pytest.approx(1.0)


def test_spread_covers_the_range():
    pred = [1.0, 1.1, 1.2, 1.3, 5.0, 9.0, 9.1, 2.0, 4.0, 6.0]
    idx = spread(pred, 5)
    assert sorted(pred[i] for i in idx) == [1.0, 2.0, 5.0, 6.0, 9.1] or set(idx) >= {0, 6}
    assert 0 in idx and 6 in idx and len(set(idx)) == 5
    more = spread(pred, 3, exclude=set(idx))
    assert not set(more) & set(idx)
    with pytest.raises(LUTError, match="only 10 candidates"):
        spread(pred, 11)


def test_scatter_plot(tmp_path):
    from lut.plots import scatter

    p = scatter([1.0, 2.0, 3.0], {"raw sum": [0.9, 1.9, 2.8], "calibrated": [1.0, 2.0, 3.1]}, tmp_path / "s.png", "t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------- build
def test_build_measures_each_distinct_key_once(tmp_path):
    blocks = synthetic_blocks()
    seen = []
    t = build(blocks + blocks[:2], ort(), tmp_path / "t.parquet", SPACE, resolutions=[16], progress=False,
              on_row=lambda r: seen.append(r["key"]))
    assert sorted(seen) == sorted(b.key for b in blocks)  # duplicates measured once
    assert seen != [b.key for b in blocks]  # randomised order (seeded)
    back = LatencyTable.read(tmp_path / "t.parquet")
    assert sorted(back.keys) == sorted(b.key for b in blocks) and not journal_path(tmp_path / "t.parquet").exists()
    assert back.metadata["device"]["threads"] == 1 and back.backend["name"] == "onnxruntime-cpu"
    assert back.metadata["artifacts"] == {"exporter": "torchscript"}
    assert all(len(s) >= FAST.runs for s in back.rows["samples_ms"])
    # the bigger convolution costs more: the table measured something real
    assert back.median_ms("conv r16 c16>16 k3".replace("16>16 k3", "8>16 k3")) > 0
    assert back.median_ms("conv r16 c8>8 k5") > back.median_ms("conv r16 c16>16 k1") * 0.2
    # rerunning a finished build measures nothing
    again = []
    build(blocks, ort(), tmp_path / "t.parquet", SPACE, progress=False, on_row=lambda r: again.append(r))
    assert again == []


def test_build_refuses_to_mix(tmp_path):
    blocks = synthetic_blocks()[:2]
    build(blocks, ort(), tmp_path / "t.parquet", SPACE, progress=False)
    with pytest.raises(LUTError, match="threads: 1 vs 2"):
        build(synthetic_blocks(), ort(threads=2), tmp_path / "t.parquet", SPACE, progress=False)
    with pytest.raises(LUTError, match="space differs"):
        build(synthetic_blocks(), ort(), tmp_path / "t.parquet", {"name": "other", "hash": "beef"}, progress=False)
    # a journal left by another build is refused too
    build(blocks, ort(), tmp_path / "u.parquet", SPACE, progress=False, limit=1)
    with pytest.raises(IdentityError, match="journal .* was written with other settings .*space differs"):
        build(blocks, ort(), tmp_path / "u.parquet", {"name": "other", "hash": "beef"}, progress=False)


def test_build_extends_an_existing_table(tmp_path):
    blocks = synthetic_blocks()
    first = build(blocks[:3], ort(), tmp_path / "t.parquet", SPACE, resolutions=[16], progress=False)
    new = []
    t = build(blocks, ort(), tmp_path / "t.parquet", SPACE, resolutions=[32], progress=False, on_row=lambda r: new.append(r["key"]))
    assert sorted(new) == sorted(b.key for b in blocks[3:])
    assert sorted(t.keys) == sorted(b.key for b in blocks) and t.metadata["resolutions"] == [16, 32]
    assert t.median_ms(blocks[0].key) == first.median_ms(blocks[0].key)  # old rows kept as measured


def test_the_drift_reference_is_recorded_kept_when_extending_and_sized_by_the_cache(tmp_path, monkeypatch, sod_space):
    from hwnas.cli.lut import _reference_for
    from lut.reference import LARGE_REFERENCE_NAME, REFERENCE_NAME, reference_model

    blocks = synthetic_blocks()
    t = build(blocks[:2], ort(), tmp_path / "t.parquet", SPACE, resolutions=[16], progress=False,
              reference=LARGE_REFERENCE_NAME)
    assert t.metadata["latency_model"]["reference"] == LARGE_REFERENCE_NAME
    back = LatencyTable.read(tmp_path / "t.parquet")
    assert back.reference_name == LARGE_REFERENCE_NAME
    small = build(blocks[:2], ort(), tmp_path / "s.parquet", SPACE, resolutions=[16], progress=False)
    # the 256 px reference runs ~64x the pixels of the 32 px one: the table's median says which was timed
    assert back.reference_ms > 10 * small.reference_ms
    # extended by a build that would choose the small one: the table keeps the reference its rows have
    t2 = build(blocks, ort(), tmp_path / "t.parquet", SPACE, resolutions=[32], progress=False, reference=REFERENCE_NAME)
    assert t2.reference_name == LARGE_REFERENCE_NAME and len(t2) == len(blocks)
    with pytest.raises(LUTError, match="reference 'nope' unknown; allowed: ref-conv16-32px-v1, ref-conv16-256px-v1"):
        reference_model("nope")
    # the rule: the L3-sized reference where a model at every resolution does not stay cached
    low = min(sod_space.resolutions)
    llc = (sod_space.model_bytes(low) + sod_space.model_bytes(320)) // 2
    monkeypatch.setattr("profilers.cache.retained_cache_bytes", lambda: llc)
    assert _reference_for(sod_space, [320]) == LARGE_REFERENCE_NAME
    # otherwise a model of the space itself at the smallest resolution (hwnas.reference) where it is
    # cheap to time in every window; the small stack where it is not (inas-sod at 320 px: 1.8 GMAC)
    from hwnas.reference import MAX_MACS, build_reference, space_model_reference
    from lut.footprint import model_macs

    from hwnas.space import create

    assert _reference_for(sod_space, [low, 320]) == REFERENCE_NAME
    # multi-threaded tables there take the L3-sized one (bench/reference_ab.py --threads 2)
    assert _reference_for(sod_space, [low, 320], threads=2) == LARGE_REFERENCE_NAME
    sod = space_model_reference(sod_space, low)
    assert model_macs(*build_reference(sod.split(":", 1)[1])) > 10 * MAX_MACS
    tiny = create("inas-tiny")
    assert _reference_for(tiny, [64, 96]) == space_model_reference(tiny, 64)  # 4.5 MMAC
    assert _reference_for(tiny, [64, 96], threads=2) == space_model_reference(tiny, 64)
    monkeypatch.setattr("hwnas.reference.MAX_MACS", 100 * MAX_MACS)
    assert _reference_for(sod_space, [low, 320]) == sod
    monkeypatch.setattr("profilers.cache.retained_cache_bytes", lambda: 1 << 40)
    assert _reference_for(sod_space, [320]) == space_model_reference(sod_space, 320)


def test_a_resumed_or_extended_build_repeats_the_cache_decision_its_rows_were_measured_under(tmp_path, monkeypatch):
    """What stays cached is measured at the start of a build (``profilers.cache.probe_cache``); a
    build resumed from its journal, or extending its table, takes the recorded value, not a new
    measurement that might decide otherwise and mix flushed with warm rows."""
    from hwnas.cli.lut import _cache_probe

    import profilers.cache

    blocks = synthetic_blocks()
    out = tmp_path / "t.parquet"
    recorded = {"retained_bytes": 48 << 20, "source": "measured"}
    build(blocks[:2], ort(), out, SPACE, resolutions=[16], progress=False, limit=1, cache_probe=recorded)
    assert not out.exists()  # unfinished: the journal holds the decision
    monkeypatch.setattr(profilers.cache, "probe_cache", lambda *a, **k: pytest.fail("measured again"))
    assert _cache_probe(str(out)) == (recorded, f"as recorded by the build of {out}")
    t = build(blocks[:2], ort(), out, SPACE, resolutions=[16], progress=False, cache_probe=recorded)
    assert t.metadata["latency_model"]["cache_probe"] == recorded and out.exists()
    assert "48 MiB stayed cached between passes (measured)" in LatencyTable.read(out).summary()
    assert _cache_probe(str(out))[0] == recorded
    monkeypatch.setenv(profilers.cache.CACHE_BYTES_ENV, "777")  # a fresh table: the override, then the probe
    assert _cache_probe(str(tmp_path / "new.parquet"))[0]["retained_bytes"] == 777


def test_a_model_of_the_space_is_a_reference_any_process_rebuilds(tmp_path):
    """The ``space-model:`` reference is named by the space's hash and one arch drawn with a fixed
    seed: the same name and the same seeded model every time; a changed space or a malformed name is
    refused with the reason; a build records it and times its blocks against it."""
    from hwnas.reference import PREFIX, space_model_reference
    from hwnas.space import create
    from lut.reference import reference_model

    space = create("inas-smoke")
    res = min(space.resolutions)
    name = space_model_reference(space, res)
    assert name.startswith(PREFIX) and name == space_model_reference(space, res) and name.endswith("@inas-smoke")
    (m1, x1), (m2, x2) = reference_model(name), reference_model(name)
    assert x1[0].shape == (1, 3, res, res)
    with torch.no_grad():
        torch.testing.assert_close(m1(*x1), m2(*x2), rtol=0, atol=0)  # seeded weights and input
    with pytest.raises(LUTError, match="recorded for definition 0000000000000000.*rebuild the table"):
        reference_model(name.replace(space.hash, "0" * 16))
    with pytest.raises(LUTError, match="expected space-model:<space hash>:<arch>@<space>"):
        reference_model("space-model:nonsense")
    with pytest.raises(LUTError, match="reference 'nope' unknown; allowed: .*, or space-model:"):
        reference_model("nope")
    t = build(synthetic_blocks()[:2], ort(), tmp_path / "t.parquet", SPACE, resolutions=[16], progress=False, reference=name)
    back = LatencyTable.read(tmp_path / "t.parquet")
    assert back.reference_name == name and back.reference_ms == pytest.approx(t.reference_ms) and t.reference_ms > 0


def test_a_users_yaml_space_is_its_own_reference_by_path_or_falls_back(tmp_path, monkeypatch):
    """A space read from the user's YAML file is not known by its name: its model reference names the
    file by absolute path (``create`` rebuilds it, hash checked); where nothing rebuilds it (the file
    changed since), the table takes the convolution stack instead of failing the build."""
    from _spaces import MICRO_SPACE
    from hwnas.cli.lut import _reference_for
    from hwnas.reference import rebuild_spec, space_model_reference
    from hwnas.space import create
    from lut.reference import REFERENCE_NAME, reference_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "micro.yaml").write_text(MICRO_SPACE)
    space = create("micro.yaml")  # relative, as a user types it
    assert rebuild_spec(space) == str(tmp_path / "micro.yaml") and rebuild_spec(create("inas-smoke")) == "inas-smoke"
    name = space_model_reference(space, 32)
    assert name.endswith(f"@{tmp_path / 'micro.yaml'}")
    module, inputs = reference_model(name)
    assert inputs[0].shape == (1, 3, 32, 32)
    monkeypatch.setattr("profilers.cache.retained_cache_bytes", lambda: 1 << 40)  # cache-resident: a model of the space
    assert _reference_for(space, [32]) == name
    (tmp_path / "micro.yaml").write_text(MICRO_SPACE.replace("name: micro", "name: micro2"))
    assert rebuild_spec(space) is None and space_model_reference(space, 32) is None
    assert _reference_for(space, [32]) == REFERENCE_NAME


def test_torn_journal_line_is_dropped(tmp_path):
    blocks = synthetic_blocks()
    out = tmp_path / "t.parquet"
    build(blocks, ort(), out, SPACE, progress=False, limit=2)
    j = journal_path(out)
    with open(j, "a") as f:
        f.write('{"row": {"key": "conv r16 c4')  # what kill -9 mid-write leaves
    t = build(blocks, ort(), out, SPACE, progress=False)
    assert sorted(t.keys) == sorted(b.key for b in blocks) and len(t.rows) == len(blocks)


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_lut import synthetic_blocks, ort, SPACE
    from lut.build import build
    build(synthetic_blocks(), ort(), sys.argv[1], SPACE, progress=False)
""")


def test_kill9_then_resume_equals_one_go_build(tmp_path):
    out = tmp_path / "killed.parquet"
    script = tmp_path / "run_build.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    j = journal_path(out)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for 2 measured rows (header + 2 lines)
        if j.exists() and j.read_text().count("\n") >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"build exited early: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    before = {json.loads(line)["row"]["key"]: json.loads(line)["row"]["median_ms"]
              for line in j.read_text().splitlines() if line.strip().endswith("}") and '"row"' in line}
    assert 2 <= len(before) < len(synthetic_blocks())

    resumed_rows = []
    resumed = build(synthetic_blocks(), ort(), out, SPACE, progress=False, on_row=lambda r: resumed_rows.append(r["key"]))
    one_go = build(synthetic_blocks(), ort(), tmp_path / "one_go.parquet", SPACE, progress=False)
    assert not set(resumed_rows) & set(before)  # nothing measured twice
    final = LatencyTable.read(out)
    assert sorted(final.keys) == sorted(one_go.keys) and len(final.rows) == len(set(final.keys))
    assert {k: final.median_ms(k) for k in before} == before  # journaled rows kept as measured
    assert not j.exists()


def test_merge_parts_of_one_build(tmp_path):
    from lut.build import merge

    blocks = synthetic_blocks()
    build(blocks[:3], ort(), tmp_path / "a.parquet", SPACE, progress=False)
    build(blocks[2:], ort(), tmp_path / "b.parquet", SPACE, progress=False, limit=2)  # unfinished: a journal
    a = LatencyTable.read(tmp_path / "a.parquet")
    from lut.build import read_rows

    _, b_rows = read_rows(journal_path(tmp_path / "b.parquet"))
    t = merge([tmp_path / "a.parquet", journal_path(tmp_path / "b.parquet")], tmp_path / "m.parquet")
    assert set(t.keys) == set(a.keys) | {r["key"] for r in b_rows} and len(t.rows) == len(t.keys)
    assert all(t.median_ms(k) == a.median_ms(k) for k in a.keys)  # a key in both keeps the first input's row
    assert LatencyTable.read(tmp_path / "m.parquet").keys == t.keys
    other = fake_table(["x"], [1.0])
    other.write(tmp_path / "o.parquet")
    with pytest.raises(LUTError, match="cannot merge .* device differs"):
        merge([tmp_path / "a.parquet", tmp_path / "o.parquet"], tmp_path / "bad.parquet")


# ------------------------------------------------------------------------------- validate
def chain_case(name: str, spec: list[tuple[int, int, int]]) -> ModelCase:
    blocks = [conv_block(c, c2, k, 16) for c, c2, k in spec]

    def make():
        torch.manual_seed(0)
        layers = [m for b in blocks for m in b.build()]
        return nn.Sequential(*layers).eval(), (torch.randn(1, spec[0][0], 16, 16),)

    return ModelCase(name, [b.key for b in blocks], make)


def test_validate_reports_raw_and_calibrated(tmp_path):
    blocks = synthetic_blocks()
    table = build(blocks, ort(), tmp_path / "t.parquet", SPACE, progress=False)
    # the 3 calibration models (first) are 2, 5 and 10 blocks long: far enough apart that a noisy VM
    # cannot invert their order (the fit would then be refused, rightly); b and c, 3 blocks each, could
    chains = {
        "a": [(4, 8, 3), (8, 8, 3)], "d": [(4, 8, 3), (8, 8, 3), (8, 8, 5), (8, 16, 3), (16, 8, 3)],
        "h": [(4, 8, 3)] + [(8, 8, 5)] * 8 + [(8, 16, 3)],
        "b": [(4, 8, 3), (8, 8, 5), (8, 16, 3)], "c": [(4, 8, 3), (8, 16, 3), (16, 16, 1)],
        "e": [(4, 8, 3), (8, 16, 3), (16, 8, 3)], "f": [(4, 8, 3), (8, 8, 5), (8, 8, 5), (8, 8, 3)],
    }
    cases = [chain_case(k, v) for k, v in chains.items()]
    # two shards measure side by side (here one after the other); the report run measures nothing new
    from lut.validate import measure_cases, shard_journal

    for i in (1, 2):
        assert validate(table, cases[:3], cases[3:], ort(), journal=tmp_path / "m.jsonl", progress=False, shard=(i, 2)) is None
    assert len(shard_journal(tmp_path / "m.jsonl", 1, 2).read_text().splitlines()) == 1 + 4  # header + rows
    assert len(shard_journal(tmp_path / "m.jsonl", 2, 2).read_text().splitlines()) == 1 + 3
    report = validate(table, cases[:3], cases[3:], ort(), journal=tmp_path / "m.jsonl", progress=False)
    assert report["calibration"]["n_models"] == 3 and report["raw"]["n"] == 4 and report["calibrated"]["n"] == 4
    for row in report["models"]:
        assert row["raw_sum_ms"] == pytest.approx(table.raw_sum_ms(dict(zip(chains, cases))[row["name"]].keys))
        assert row["measured_ms"] > 0
    # the reference as fast as during the build a minute ago (same machine; a 2x slower host shows here)
    assert 0.5 < report["reference_now_vs_build"] < 2.0
    assert report["reference_now_ms"] == pytest.approx(report["reference_now_vs_build"] * table.reference_ms)
    assert not (tmp_path / "m.jsonl").exists() or not (tmp_path / "m.jsonl").read_text()  # all came from the shards
    assert measure_cases(cases, ort(), journal=tmp_path / "m.jsonl", progress=False).keys() == set(chains)


def test_build_in_rounds_pools_windows_and_resumes(tmp_path):
    from dataclasses import replace

    blocks = synthetic_blocks()
    prof = profilers.get("onnxruntime-cpu", threads=1, protocol=replace(FAST, rounds=2), exporter="torchscript")
    out = tmp_path / "r.parquet"
    partial = build(blocks, prof, out, SPACE, progress=False, limit=len(blocks) + 2)  # round 0 done, 2 of round 1
    assert len(partial.keys) == 2 and not out.exists()
    lines = [json.loads(x) for x in journal_path(out).read_text().splitlines()[1:]]
    assert [x["round"] for x in lines] == [0] * len(blocks) + [1, 1]  # a whole pass before the second one
    t = build(blocks, prof, out, SPACE, progress=False)
    assert t.keys == sorted(b.key for b in blocks) and not journal_path(out).exists()
    # each row is the faster of the block's two journaled windows
    journal_rows = {}
    for x in lines:
        journal_rows.setdefault(x["row"]["key"], []).append(x["row"]["median_ms"])
    for key, med in zip(t.rows["key"], t.rows["median_ms"]):
        if len(journal_rows.get(key, [])) == 2:
            assert med == min(journal_rows[key])
    assert LatencyTable.read(out).protocol["rounds"] == 2
    # a one-round table is another protocol: not extended by a two-round build
    build(blocks[:2], ort(), tmp_path / "one.parquet", SPACE, progress=False)
    with pytest.raises(LUTError, match="timing protocol differs: rounds: 1 vs 2"):
        build(blocks, prof, tmp_path / "one.parquet", SPACE, progress=False)


def test_measure_cases_rounds_round_robin_pooled_and_resumable(tmp_path):
    from lut.validate import measure_cases

    cases = [chain_case(k, v) for k, v in {"a": [(4, 8, 3)], "b": [(4, 8, 3), (8, 8, 5)], "c": [(4, 8, 5)]}.items()]
    journal = tmp_path / "m.jsonl"
    got = measure_cases(cases, ort(), journal=journal, progress=False, rounds=2)
    lines = [json.loads(x) for x in journal.read_text().splitlines()[1:]]  # after the header
    assert sorted((x["name"], x["round"]) for x in lines) == [(n, r) for n in "abc" for r in (0, 1)]
    assert [x["round"] for x in lines] == [0, 0, 0, 1, 1, 1]  # round-robin: every model once before any twice
    for name, m in got.items():
        per_round = [x["measurement"] for x in lines if x["name"] == name]
        fastest = min(per_round, key=lambda r: r["median_ms"])
        assert m["median_ms"] == fastest["median_ms"] and m["samples_ms"] == fastest["samples_ms"]
        assert m["info"]["round_medians_ms"] == [r["median_ms"] for r in per_round]
        assert m["info"]["round_runs"] == [r["runs"] for r in per_round]
    # killed before the last measurement: a rerun measures only what is missing
    journal.write_text("\n".join(journal.read_text().splitlines()[:-1]) + "\n")
    measure_cases(cases, ort(), journal=journal, progress=False, rounds=2)
    assert len(journal.read_text().splitlines()) == 1 + 6
    # measured with other settings: refused, not mixed
    with pytest.raises(IdentityError, match="measurement journal .* threads: 1 vs 2"):
        measure_cases(cases, ort(threads=2), journal=journal, progress=False, rounds=2)
    with pytest.raises(IdentityError, match="drift reference differs: ref-conv16-32px-v1 vs ref-conv16-256px-v1"):
        measure_cases(cases, ort(), journal=journal, progress=False, rounds=2, reference="ref-conv16-256px-v1")
    with pytest.raises(LUTError, match="rounds must be >= 1"):
        measure_cases(cases, ort(), rounds=0, progress=False)


def test_whole_models_are_checked_against_the_reference_the_table_exported(tmp_path, monkeypatch):
    """The build exports its drift reference with the blocks' exporter (TorchScript on ONNX Runtime),
    validation its whole models with dynamo: the reference must still be the build's artifact (the
    dynamo one ran 2.6 % faster, and every compensated model moved by that)."""
    from profilers.onnxruntime_cpu import OnnxRuntimeCPU
    from lut.validate import measure_cases

    dynamo = profilers.get("onnxruntime-cpu", threads=1, protocol=FAST, exporter="dynamo")
    same = dynamo.exporting_as({"exporter": "dynamo", "not-an-option": 1})
    assert same is dynamo
    other = dynamo.exporting_as({"exporter": "torchscript"})
    assert other is not dynamo and other.exporter == "torchscript" and dynamo.exporter == "dynamo"
    assert other.identity()["settings"] == dynamo.identity()["settings"]  # measures the same way
    remote = profilers.get("ssh", host="jetson", backend="onnxruntime-cpu", protocol=FAST, exporter="dynamo")
    assert remote.exporting_as({"exporter": "torchscript"}).inner.exporter == "torchscript"  # exported here, as the build
    assert remote.inner.exporter == "dynamo" and remote.exporting_as({"exporter": "dynamo"}) is remote

    exported = []
    real_export = OnnxRuntimeCPU.export

    def spy(self, model, example_inputs, path):
        exported.append((Path(path).stem, self.exporter))
        return real_export(self, model, example_inputs, path)

    monkeypatch.setattr(OnnxRuntimeCPU, "export", spy)
    cases = [chain_case("a", [(4, 8, 3)])]
    journal = tmp_path / "m.jsonl"
    measure_cases(cases, dynamo, journal=journal, progress=False, reference_artifacts={"exporter": "torchscript"})
    assert ("reference", "torchscript") in exported
    assert [e for n, e in exported if n != "reference"] == ["dynamo"]  # the whole model: as hwnas export makes it
    with pytest.raises(IdentityError, match="drift reference exported differently: .*torchscript.* vs as the whole models"):
        measure_cases(cases, dynamo, journal=journal, progress=False)


# ------------------------------------------------------------------------------------ CLI
def _tiny_table(tmp_path, tiny_space, calibration=None):
    arch = tiny_space.sample(0)
    keys = sorted({b.key for b in tiny_space.blocks(arch)})
    t = fake_table(keys, [0.5] * len(keys), space={"name": tiny_space.name, "hash": tiny_space.hash})
    if calibration:
        t = t.with_calibration(calibration)
    path = t.write(tmp_path / "tiny.parquet")
    arch_path = tmp_path / "arch.json"
    arch_path.write_text(arch.to_json())
    return path, arch_path, len(tiny_space.blocks(arch))


def test_cli_predict_and_show(tmp_path, tiny_space, capsys):
    from hwnas.cli import main

    path, arch, n = _tiny_table(tmp_path, tiny_space, {"kind": "affine", "a": 2.0, "b_ms": 1.0})
    assert main(["lut", "predict", "--lut", str(path), "--arch", str(arch), "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert f"raw_sum_ms {0.5 * n:.3f}" in out and f"calibrated_ms {2 * 0.5 * n + 1:.3f}" in out and "mbconv" in out
    assert main(["lut", "show", str(path), "--rows", "3"]) == 0
    out = capsys.readouterr().out
    assert "inas-tiny" in out and "'kind': 'affine'" in out


def test_cli_user_errors_are_one_line(tmp_path, tiny_space, sod_space, capsys):
    from hwnas.cli import main

    path, _, _ = _tiny_table(tmp_path, tiny_space)
    sod_arch = tmp_path / "sod.json"
    sod_arch.write_text(sod_space.smallest().to_json())
    assert main(["lut", "predict", "--lut", str(path), "--arch", str(sod_arch)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hwnas lut: error:")
    assert main(["lut", "build", "--space", "inas-tiny", "--resolutions", "65", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "allowed: [64, 96]" in capsys.readouterr().err
    assert main(["lut", "build", "--space", "inas-tiny", "--backend", "onnxrt", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "unknown backend 'onnxrt'" in capsys.readouterr().err
    assert main(["lut", "show", str(tmp_path / "missing.parquet")]) == 2


def test_cli_profilers_list(capsys):
    from hwnas.cli import main

    assert main(["profilers", "list"]) == 0
    out = capsys.readouterr().out
    for name in profilers.names():
        assert name in out


@pytest.mark.slow
def test_cli_build_validate_calibrate_end_to_end(tmp_path, capsys):
    """The whole CLI path on a micro space: build, validate (spread models, calibration), save, predict."""
    from hwnas.cli import main
    from _spaces import MICRO_SPACE

    space = tmp_path / "micro.yaml"
    space.write_text(MICRO_SPACE)
    lut_path = tmp_path / "micro.parquet"
    assert main(["lut", "build", "--space", str(space), "--out", str(lut_path), "--no-progress", "--clock", "thread_cpu"]) == 0
    t = LatencyTable.read(lut_path)
    assert t.protocol["clock"] == "thread_cpu" and len(t) == 70
    assert main(["lut", "validate", "--lut", str(lut_path), "--space", str(space), "--n", "4", "--calibrate", "3",
                 "--candidates", "50", "--runs", "20", "--save-calibration", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "plain sum vs measured" in out and "n=4 MAPE" in out and "calibrated prediction" in out
    assert "saved the calibration" in out and "during the build: this machine runs" in out
    assert "; round 1 vs round 2 tau: raw " in out  # two rounds (the default) of 4 models: the ranking floor
    report = json.loads((tmp_path / "micro.parquet.validation" / "report.json").read_text())
    assert len(report["models"]) == 4 and report["calibration"]["kind"] == "affine"
    assert (tmp_path / "micro.parquet.validation" / "scatter.png").stat().st_size > 1000
    assert LatencyTable.read(lut_path).calibration == report["calibration"]


def test_export_ahead_replaces_its_workers_in_batches_and_exports_every_block(tmp_path, monkeypatch):
    """Workers are replaced every EXPORTS_PER_WORKER blocks each (ExecuTorch's export grows a worker's
    memory by ~14 MB per block): a new pool per batch; every block of every batch is exported."""
    import lut.export_pool
    import lut.measure
    from hwnas.blocks import space_blocks
    from hwnas.space import create

    monkeypatch.setattr(lut.export_pool, "EXPORTS_PER_WORKER", 2)  # 10 blocks, 2 workers: 3 pools
    blocks = space_blocks(create("inas-smoke"), [32])[:10]
    assert len(blocks) == 10
    meter = lut.measure.BlockMeter(ort(), tmp_path / "work")
    arts = meter.export_ahead(blocks, tmp_path / "cache", progress=False, workers=2)
    assert set(arts) == {b.key for b in blocks}
    assert all(a.isolated.is_file() and a.context is not None and a.context.is_file() for a in arts.values())
    assert len(list((tmp_path / "cache").iterdir())) == 10  # one folder per block, no temporary left


def test_whole_models_are_exported_ahead_in_worker_processes(tmp_path):
    """Validation exports every model before timing any, in spawned workers (an ExecuTorch export
    of a 320 px model takes tens of seconds): each case's artifact exists, named for its model; a
    case that cannot be sent to a worker (built by a lambda) leaves the export to the timing loop."""
    import functools
    import random

    from hwnas.cli.lut import _whole_model
    from hwnas.space import create
    from lut.validate import ModelCase, _export_ahead

    space = create("inas-smoke")
    archs = {a.to_string(): a for a in (space.sample(random.Random(i), resolution=32) for i in range(6))}
    cases = [ModelCase(n, [b.key for b in space.blocks(a)], functools.partial(_whole_model, space, a)) for n, a in archs.items()]
    arts = _export_ahead(cases, ort(), tmp_path, progress=False)
    assert set(arts) == set(archs) and len(arts) >= 4
    assert all(path.is_file() and shapes == [(1, 3, 32, 32)] for path, shapes in arts.values())
    lambdas = [ModelCase(c.name, c.keys, lambda c=c: c.build()) for c in cases]
    assert _export_ahead(lambdas, ort(), tmp_path / "l", progress=False) == {}


def test_retest_spread_states_the_error_and_the_ranking_floor():
    """A validation's retest: the relative difference of each model's two rounds and the Kendall τ
    of round 1 against round 2 (one discordant pair of 6 gives (5 - 1) / 6)."""
    from lut.validate import retest_spread

    measured = {name: {"round_medians_ms": raw, "round_ratios": norm} for name, raw, norm in (
        ("a", [10, 10.5], [1.0, 1.2]), ("b", [20, 19], [2.0, 1.1]), ("c", [30, 33], [3.0, 3.0]), ("d", [40, 38], [4.0, 4.0]))}
    r = retest_spread(measured)
    assert r["n"] == 4 and r["raw_median_pct"] == pytest.approx(100 / 19.5)  # 4.88, 5.13, 9.52, 5.13 %
    assert r["raw_kendall_tau"] == pytest.approx(1.0) and r["normalized_kendall_tau"] == pytest.approx(4 / 6)
    two = retest_spread({k: measured[k] for k in "ab"})
    assert "raw_kendall_tau" not in two and "normalized_kendall_tau" not in two  # too few models to rank
    assert retest_spread({"a": {"round_medians_ms": [10]}}) is None
