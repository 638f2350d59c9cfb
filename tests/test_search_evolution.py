"""The LGS evolutionary search engine on synthetic LUT-like latency and fitness."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deploy.fileio import IdentityError
from hwnas.arch import Arch, load_arch
from hwnas.search.errors import SearchError
from hwnas.search.evolution import CACHE_FILE, STATE_FILE, SearchConfig, latency_range, normalized_hypervolume, search
from hwnas.search.pareto import pareto_front
from hwnas.search.report import write_outputs
from hwnas.search.synthetic import MacsLatencyModel, SyntheticFitness

RES = 64


def small_config(**kw):
    base = dict(resolution=RES, population=60, groups=6, keep=18, iterations=4, seed=0)
    base.update(kw)
    return SearchConfig(**base)


def run(space, out_dir=None, **kw):
    lat, fit = MacsLatencyModel(space), SyntheticFitness(space, RES)
    return search(space, lat, fit, small_config(**kw), out_dir=out_dir, progress=False), fit


def test_offspring_valid_budget_and_front(tiny_space):
    res, fit = run(tiny_space)
    cfg = res.config
    assert all(tiny_space.contains(Arch.from_string(c.arch)) for c in res.candidates)
    assert len({c.arch for c in res.candidates}) == len(res.candidates)
    assert fit.calls == len(res.candidates) == res.fitness_calls  # each architecture evaluated once
    # N initial + k new children per iteration (children are bred until new)
    assert len(res.candidates) == cfg.population + cfg.iterations * cfg.keep
    assert [h["iteration"] for h in res.history] == list(range(cfg.iterations + 1))
    assert [h["evaluated"] for h in res.history] == [cfg.population + i * cfg.keep for i in range(cfg.iterations + 1)]
    pts = [(c.latency_ms, c.fitness) for c in res.candidates]
    assert sorted(c.arch for c in res.pareto) == sorted(res.candidates[i].arch for i in pareto_front(pts))
    # thesis line 15: the population is the Pareto front of everything evaluated
    assert sorted(res.population) == sorted(c.arch for c in res.pareto)
    hv = [h["hypervolume"] for h in res.history]
    assert all(b >= a for a, b in zip(hv, hv[1:])) and hv[-1] > hv[0]


def test_keep_all_population_and_determinism(tiny_space):
    a, _ = run(tiny_space, population_update="all", seed=3)
    b, _ = run(tiny_space, population_update="all", seed=3)
    assert [(c.arch, c.fitness) for c in a.candidates] == [(c.arch, c.fitness) for c in b.candidates]
    assert len(a.population) == len(a.candidates)  # the authors' variant keeps everyone
    c, _ = run(tiny_space, population_update="all", seed=4)
    assert [x.arch for x in c.candidates] != [x.arch for x in a.candidates]


def test_latency_cap_bounds_groups_and_candidates(tiny_space):
    lat = MacsLatencyModel(tiny_space)
    lo, hi = latency_range(tiny_space, lat, RES)
    cap = lo + 0.4 * (hi - lo)
    res, _ = run(tiny_space, max_latency_ms=cap)
    assert res.lat_min_ms == pytest.approx(lo) and res.lat_max_ms == pytest.approx(cap)
    assert res.edges[0] == pytest.approx(lo) and res.edges[-1] == pytest.approx(cap) and len(res.edges) == 7
    assert max(c.latency_ms for c in res.candidates) <= cap
    assert all(c.latency_ms <= cap for c in res.pareto)


def test_impossible_constraint_is_refused_with_the_feasible_range(tiny_space):
    lat = MacsLatencyModel(tiny_space)
    lo = lat(tiny_space.smallest(RES))
    hi = lat(tiny_space.largest(RES))
    with pytest.raises(SearchError, match=rf"below the fastest.*feasible range: {lo:.3f}-{hi:.3f} ms"):
        run(tiny_space, max_latency_ms=lo * 0.5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(sampler="random"), "allowed: lgs, uniform"),
        (dict(groups=0), "groups must be >= 1"),
        (dict(population=5, groups=10), r"population \(5\) must be >= groups"),
        (dict(mutation_prob=1.5), r"mutation_prob must be in \[0, 1\]"),
        (dict(resolution=100), r"resolution 100 not in space inas-tiny; allowed: \[64, 96\]"),
    ],
)
def test_bad_settings_are_refused(tiny_space, kw, match):
    with pytest.raises(SearchError, match=match):
        run(tiny_space, **kw)


def test_lgs_front_beats_uniform_at_equal_budget(tiny_space):
    """One seed of bench/lgs_vs_uniform.py at test size: same number of evaluations, larger hypervolume."""
    lgs, _ = run(tiny_space, sampler="lgs", population=100, groups=10, keep=30, iterations=3)
    uni, _ = run(tiny_space, sampler="uniform", population=100, groups=10, keep=30, iterations=3)
    assert len(lgs.candidates) == len(uni.candidates) == 190
    hv_lgs = normalized_hypervolume(lgs.pareto, lgs.lat_min_ms, lgs.lat_max_ms)
    hv_uni = normalized_hypervolume(uni.pareto, lgs.lat_min_ms, lgs.lat_max_ms)
    assert hv_lgs > hv_uni
    # LGS explores the fast end that uniform sampling misses
    assert min(c.latency_ms for c in lgs.candidates) < min(c.latency_ms for c in uni.candidates)


def test_outputs_population_csv_pareto_json_and_plot(tiny_space, tmp_path):
    res, _ = run(tiny_space, out_dir=tmp_path, iterations=1)
    paths = write_outputs(res, tmp_path, metric="max_f", metric_label="maxF")
    lines = paths["population"].read_text().splitlines()
    assert lines[0].startswith("arch,latency_ms,max_f,fitness,group,pareto")
    assert len(lines) == 1 + len(res.candidates)
    files = sorted((tmp_path / "pareto").glob("arch-*ms-maxF*.json"))
    assert len(files) == len(res.pareto)
    by_arch = {c.arch: c for c in res.pareto}
    for f in files:
        arch = load_arch(str(f))  # the file is a plain architecture, loadable by export
        c = by_arch[arch.to_string()]
        assert f.name == f"arch-{c.latency_ms:.3g}ms-maxF{c.fitness:.3f}.json"
    assert paths["plot"].stat().st_size > 10_000
    assert (tmp_path / STATE_FILE).is_file() and (tmp_path / CACHE_FILE).is_file()


def test_resume_refuses_other_settings(tiny_space, tmp_path):
    run(tiny_space, out_dir=tmp_path, iterations=1)
    with pytest.raises(IdentityError, match=r"search checkpoint .* other settings \(config.seed: 0 vs 1; found vs this command's\)"):
        run(tiny_space, out_dir=tmp_path, iterations=1, seed=1)
    # more iterations is an extension, not a different search
    res, fit = run(tiny_space, out_dir=tmp_path, iterations=2)
    assert [h["iteration"] for h in res.history] == [0, 1, 2] and fit.calls == 18
    # killed before the first checkpoint: the evaluation journal alone still guards its settings
    (tmp_path / STATE_FILE).unlink()
    with pytest.raises(IdentityError, match=r"fitness_cache.jsonl was written with other settings \(config.seed: 0 vs 1; found"):
        run(tiny_space, out_dir=tmp_path, iterations=1, seed=1)
    res, fit = run(tiny_space, out_dir=tmp_path, iterations=2)
    assert fit.calls == 0 and len(res.candidates) == 96  # everything replayed from the journal


CHILD = textwrap.dedent(
    """
    import sys, time
    from hwnas.space import create
    from hwnas.search.evolution import SearchConfig, search
    from hwnas.search.synthetic import MacsLatencyModel, SyntheticFitness

    space = create("inas-tiny")
    inner = SyntheticFitness(space, 64)

    def slow_fitness(arch):  # stands in for BN recalibration + validation
        time.sleep(0.02)
        return inner(arch)

    cfg = SearchConfig(resolution=64, population=60, groups=6, keep=18, iterations=6, seed=0)
    res = search(space, MacsLatencyModel(space), slow_fitness, cfg, out_dir=sys.argv[1], progress=False)
    print("computed", res.fitness_calls)
    """
)


def test_kill_9_and_resume_at_last_finished_iteration(tiny_space, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state_path = out / STATE_FILE
    deadline = time.time() + 60
    done_at_kill = -1
    while time.time() < deadline and proc.poll() is None:
        if state_path.is_file():
            try:
                done_at_kill = json.loads(state_path.read_text())["iteration_done"]
            except (json.JSONDecodeError, OSError):
                pass  # being replaced right now
            if done_at_kill >= 2:
                break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(0.15)  # let it get into the next iteration's evaluations
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads(state_path.read_text())
    assert state["iteration_done"] >= 2
    cached = set()
    for line in (out / CACHE_FILE).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill is evaluated again
        if "arch" in rec:  # (the first line is the settings header)
            cached.add(rec["arch"])

    # the restart: same settings, resumes, reuses everything evaluated, ends as an uninterrupted run
    lat, fit = MacsLatencyModel(tiny_space), SyntheticFitness(tiny_space, RES)
    cfg = SearchConfig(resolution=RES, population=60, groups=6, keep=18, iterations=6, seed=0)
    resumed = search(tiny_space, lat, fit, cfg, out_dir=out, progress=False)
    fresh = search(tiny_space, MacsLatencyModel(tiny_space), SyntheticFitness(tiny_space, RES), cfg, progress=False)
    assert [(c.arch, c.fitness, c.index) for c in resumed.candidates] == [(c.arch, c.fitness, c.index) for c in fresh.candidates]
    assert resumed.fitness_calls == len(fresh.candidates) - len(cached) > 0
    assert [h["iteration"] for h in resumed.history] == list(range(7))
    assert resumed.history[: state["iteration_done"] + 1] == state["history"]


def test_journal_one_writer_and_damaged_line_reevaluated(tiny_space, tmp_path, capsys):
    from deploy.fileio import Journal, JournalLockedError

    res, _ = run(tiny_space, out_dir=tmp_path, iterations=0)
    (tmp_path / STATE_FILE).unlink()  # as if killed before the first checkpoint
    journal = tmp_path / CACHE_FILE
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # the last row cut by a kill
    holder = Journal(journal, None).lock()  # another search writing into the same --out
    try:
        with pytest.raises(JournalLockedError):
            run(tiny_space, out_dir=tmp_path, iterations=0)
    finally:
        holder.close()
    again, fit = run(tiny_space, out_dir=tmp_path, iterations=0)
    assert fit.calls == 1  # only the damaged row is evaluated again
    assert "line 61 is damaged (cut off by a kill" in capsys.readouterr().err
    assert [(c.arch, c.fitness) for c in again.candidates] == [(c.arch, c.fitness) for c in res.candidates]
