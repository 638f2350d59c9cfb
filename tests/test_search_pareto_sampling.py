"""Pareto tools and the LGS / uniform samplers (synthetic LUT-like latency)."""

import math
import random
from collections import Counter

import pytest

from hwnas.search.pareto import (
    crowding_distance,
    dominates,
    hypervolume_2d,
    non_dominated_sort,
    pareto_front,
    select_by_fronts,
)
from hwnas.search.sampling import Genome, LatencyGroupSampler, group_edges, group_of, uniform_population
from hwnas.search.synthetic import MacsLatencyModel

# (latency, fitness): minimise the first, maximise the second
PTS = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.9), (2.5, 0.6), (1.0, 0.5), (4.0, 0.85)]


def test_pareto_front_and_sort():
    assert dominates((1.0, 0.5), (1.5, 0.4)) and not dominates((1.0, 0.5), (1.0, 0.5))
    assert pareto_front(PTS) == [0, 5, 1, 3]  # both copies of (1.0, 0.5), by increasing latency
    fronts = non_dominated_sort(PTS)
    assert fronts == [[0, 5, 1, 3], [2, 4, 6]]
    assert sorted(i for f in fronts for i in f) == list(range(len(PTS)))


def test_hypervolume_2d_exact():
    # front (1, .5), (2, .7), (3, .9) against reference (4, 0): 1*.5 + 1*.7 + 1*.9
    assert hypervolume_2d(PTS, (4.0, 0.0)) == pytest.approx(2.1)
    assert hypervolume_2d([(0.0, 1.0)], (1.0, 0.0)) == pytest.approx(1.0)
    assert hypervolume_2d([(2.0, 1.0)], (1.0, 0.0)) == 0.0  # beyond the reference
    assert hypervolume_2d([], (1.0, 0.0)) == 0.0
    # adding a dominated point changes nothing, a new non-dominated one adds its exclusive area
    assert hypervolume_2d(PTS + [(3.5, 0.1)], (4.0, 0.0)) == pytest.approx(2.1)
    assert hypervolume_2d(PTS + [(0.5, 0.2)], (4.0, 0.0)) == pytest.approx(2.1 + 0.5 * 0.2)


def test_crowding_and_selection_by_fronts():
    crowd = crowding_distance(PTS, [0, 1, 3])
    assert math.isinf(crowd[0]) and math.isinf(crowd[3])
    assert crowd[1] == pytest.approx((3.0 - 1.0) / 2.0 + (0.9 - 0.5) / 0.4)
    assert select_by_fronts(PTS, list(range(len(PTS))), 4) == [0, 5, 1, 3]
    six = select_by_fronts(PTS, list(range(len(PTS))), 6)
    assert six[:4] == [0, 5, 1, 3] and set(six[4:]) == {2, 6}  # front 2 cut by crowding: ends first
    assert select_by_fronts(PTS, [2, 4], 5) == [2, 4]  # a group smaller than its share


@pytest.mark.parametrize("name, res", [("inas-tiny", 96), ("inas-sod", 320)])
def test_genome_extremes_are_the_space_extremes(name, res, request):
    sp = request.getfixturevalue("tiny_space" if name == "inas-tiny" else "sod_space")
    g = Genome(sp, res)
    assert g.complete({}, dearest=False) == sp.smallest(res)
    assert g.complete({}, dearest=True) == sp.largest(res)
    arch = sp.sample(3, resolution=res)
    assert g.to_arch(g.from_arch(arch, random.Random(0))) == arch
    lat = MacsLatencyModel(sp)
    for _ in range(20):  # the bounds the LGS sampler relies on hold for a LUT-like sum
        a = sp.sample(random.Random(_), resolution=res)
        assert lat(sp.smallest(res)) <= lat(a) <= lat(sp.largest(res))


def test_lgs_balances_groups_and_covers_the_range(tiny_space):
    res = 96
    lat = MacsLatencyModel(tiny_space)
    lo, hi = lat(tiny_space.smallest(res)), lat(tiny_space.largest(res))
    edges = group_edges(lo, hi, 10)
    sampler = LatencyGroupSampler(tiny_space, lat, res)
    pop = sampler.population(random.Random(0), 300, edges)
    assert len(pop) == 300 and len({a.to_string() for a, _ in pop}) == 300
    assert all(tiny_space.contains(a) for a, _ in pop)
    assert all(lat(a) == pytest.approx(l) for a, l in pop)
    counts = Counter(group_of(l, edges) for _, l in pop)
    assert [counts[g] for g in range(10)] == [30] * 10  # exactly N/G per group
    assert sampler.stats.fallbacks == 0 and sampler.stats.draws >= 300

    def coverage(lats):
        return len({min(99, int((l - lo) / (hi - lo) * 100)) for l in lats}) / 100

    uniform = uniform_population(tiny_space, random.Random(0), 300, res, lat)
    lgs_cov, uni_cov = coverage([l for _, l in pop]), coverage([l for _, l in uniform])
    assert lgs_cov >= 0.97, lgs_cov
    assert uni_cov <= 0.6, uni_cov  # the thesis' point: uniform sampling misses the ends


def test_lgs_fallback_is_bounded_and_counted(tiny_space):
    # an interval no architecture can reach: every sample must still come back, as a counted fallback
    lat = MacsLatencyModel(tiny_space)
    sampler = LatencyGroupSampler(tiny_space, lat, 64, max_attempts=3)
    arch, l = sampler.sample(random.Random(0), -2.0, -1.0)
    assert tiny_space.contains(arch) and l == pytest.approx(lat(tiny_space.smallest(64)))
    assert sampler.stats.fallbacks == 1 and sampler.stats.draws == 3


def test_uniform_population_under_a_cap_uses_the_bounded_fallback(tiny_space):
    res = 64
    lat = MacsLatencyModel(tiny_space)
    lo = lat(tiny_space.smallest(res))
    cap = lo * 1.03  # far below where uniform samples fall
    fb = LatencyGroupSampler(tiny_space, lat, res)
    pop = uniform_population(tiny_space, random.Random(1), 20, res, lat, max_latency_ms=cap, max_attempts=5, fallback=fb, lat_min_ms=lo)
    assert len(pop) == 20 and all(l <= cap for _, l in pop)
