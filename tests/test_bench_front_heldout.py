"""bench/front_heldout.py's bookkeeping on hand-made dumps: which candidates form each search's front
over its first E evaluations, under the names bench/predictor_search.py reports, and the tenths where
one front rises above another. (The re-scoring it drives is hwnas.search.fitness's, tested there.)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import front_heldout as fh  # noqa: E402
from predictor_search import tenths_above  # noqa: E402

# predictor_search.py --dump: "<sampler>-<predictor>-seed<N>" -> [arch, latency, fitness, origin, iteration]
DUMP = {
    "uniform-none-seed3": [["u1", 1.0, 0.50, "init", 0], ["u2", 5.0, 0.80, "init", 0], ["u3", 3.0, 0.40, "init", 0]],
    "lgs-none-seed3": [["l1", 1.0, 0.55, "init", 0], ["l2", 4.0, 0.70, "init", 0], ["l3", 9.0, 0.99, "offspring", 1]],
    "lgs-ensemble-seed3": [["e1", 2.0, 0.60, "init", 0], ["e2", 6.0, 0.85, "init", 0]],
    "lgs-none-seed4": [["x", 1.0, 0.1, "init", 0]],
}


def test_fronts_of_names_searches_caps_the_budget_and_keeps_only_the_front():
    fronts = fh.fronts_of(DUMP, 3, budget=2)
    assert set(fronts) == {"uniform", "lgs", "lgs+ensemble"}  # seed 4 left out
    assert sorted(a for a, _, _ in fronts["uniform"]) == ["u1", "u2"]  # u3 dominated by u1 (faster, higher)
    assert sorted(a for a, _, _ in fronts["lgs"]) == ["l1", "l2"]  # l3 beyond the budget of 2


def test_tenths_counts_where_the_other_front_is_above():
    fronts = fh.fronts_of(DUMP, 3, budget=2)
    pts = lambda f: [(lat, fit) for _, lat, fit in f]  # noqa: E731
    got = tenths_above(pts(fronts["lgs"]), pts(fronts["uniform"]), 1.0, 11.0)
    # uniform's u2 (5 ms, 0.80) beats lgs's best at <= 5 ms (0.70) by 0.10 in tenth 5; u1 loses to l1
    assert got["tenths_where_uniform_above"] == [5]
    assert abs(max(got["max_gap_per_tenth"]) - 0.10) < 1e-9
