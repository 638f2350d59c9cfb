"""bench/device_awareness.py's analysis on hand-made numbers: the latency matrix, each runtime's gain
from its own winner, the reason when a runtime's own winner is not the fastest on it, and the
Kendall tau between tables. (The searches and measurements it drives are the CLI's and lut's, tested
where they live.)"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import device_awareness as da  # noqa: E402

# three runtimes; the fronts of their searches (arch, own-table latency, max-F)
FRONTS = {
    "ort": [{"arch": "a", "latency_ms": 1.0, "max_f": 0.60}, {"arch": "b", "latency_ms": 2.0, "max_f": 0.70}],
    "xnn": [{"arch": "c", "latency_ms": 1.5, "max_f": 0.62}, {"arch": "d", "latency_ms": 2.5, "max_f": 0.71}],
    "ov": [{"arch": "a", "latency_ms": 1.1, "max_f": 0.60}, {"arch": "e", "latency_ms": 2.2, "max_f": 0.72}],
}
# every table's prediction for every architecture
LAT = {
    "ort": {"a": 1.0, "b": 2.0, "c": 1.2, "d": 2.6, "e": 2.4},
    "xnn": {"a": 1.8, "b": 3.0, "c": 1.5, "d": 2.5, "e": 2.0},
    "ov": {"a": 1.1, "b": 2.1, "c": 1.3, "d": 2.7, "e": 2.2},
}
# measured on each runtime (ms)
MEASURED = {
    "ort": {"a": 1.0, "b": 2.0, "c": 1.3, "d": 2.7, "e": 2.3},
    "xnn": {"a": 1.9, "b": 3.1, "c": 1.4, "d": 2.4, "e": 2.6},
    "ov": {"a": 1.2, "b": 2.0, "c": 1.4, "d": 2.9, "e": 2.1},
}


def test_winners_matrix_and_gains():
    picks = da.pick_winners(FRONTS, 2)
    assert [round(p["target_max_f"], 3) for p in picks] == [0.62, 0.70]
    low, high = picks
    assert {n: w["arch"] for n, w in low["winners"].items()} == {"ort": "b", "xnn": "c", "ov": "e"}
    t = da.analyse_target(low, MEASURED, LAT, FRONTS)
    assert t["matrix_ms"]["xnn"] == {"ort": 1.3, "xnn": 1.4, "ov": 1.4}  # row: searched for xnn, measured everywhere
    assert t["matrix_ms"]["ort"]["ort"] == 2.0
    g = t["gains"]["xnn"]  # on xnn: own 1.4 vs ort's winner 3.1, ov's 2.6
    assert g["own_is_fastest"] and g["vs_pct"]["ort"] == pytest.approx(100 * (3.1 - 1.4) / 3.1)
    assert g["vs_mean_of_others_pct"] == pytest.approx(100 * (2.85 - 1.4) / 2.85)
    # on ort, xnn's winner c (1.3 ms) beats ort's own b (2.0 ms): ort's table ranks c faster too, but
    # ort's search never reached c -> a search miss, not a table error
    assert not t["gains"]["ort"]["own_is_fastest"]
    assert t["gains"]["ort"]["why_not"].startswith("search miss: ort's table ranks xnn's winner faster")
    assert "was not reached by its search" in t["gains"]["ort"]["why_not"]


def test_table_error_is_named():
    pick = {"target_max_f": 0.7, "winners": {"ort": {"arch": "b", "max_f": 0.7, "own_lut_ms": 2.0},
                                             "ov": {"arch": "e", "max_f": 0.72, "own_lut_ms": 2.2}}}
    measured = {"ort": {"b": 2.5, "e": 2.3}, "ov": {"b": 2.0, "e": 2.1}}
    t = da.analyse_target(pick, measured, LAT, FRONTS)
    # on ov: its table predicts e (2.2) slower than b (2.1), so ov's winner is... e is own; b measured faster
    assert not t["gains"]["ov"]["own_is_fastest"]
    why = t["gains"]["ov"]["why_not"]
    assert why.startswith("search miss") and "2.100 vs 2.200" in why
    # on ort: the table predicts own b (2.0) faster than e (2.4), measured slower (2.5 vs 2.3): a table error
    assert t["gains"]["ort"]["why_not"].startswith("table error: ort's table predicts its own winner faster (2.000 vs 2.400")


def test_kendall_tau_matrix_and_report():
    tau = da.tau_matrix(LAT)
    assert tau["ort"]["ort"] == 1.0 and tau["ort"]["ov"] == pytest.approx(1.0)  # same order of all five
    assert tau["ort"]["xnn"] == tau["xnn"]["ort"] and tau["ort"]["xnn"] < 1.0
    picks = da.pick_winners(FRONTS, 2)
    targets = [da.analyse_target(p, MEASURED, LAT, FRONTS) for p in picks]
    result = {"name": "x", "host": {"cpu_model": "TestCPU", "logical_cores": 2}, "space": "inas-tiny",
              "luts": {n: f"{n}.parquet" for n in LAT}, "kendall_tau": tau, "n_candidates": 5,
              "searches": {n: {"wall_s": 60, "cpu_s": 120, "load_before": [1], "load_after": [2]} for n in LAT},
              "evaluated": {n: 10 for n in LAT}, "front_sizes": {n: 2 for n in LAT}, "targets": targets,
              "mean_gain_pct": {n: 1.0 for n in LAT}, "distinct_winners": 4}
    text = "\n".join(da.report_lines(result, "settings"))
    assert "| searched for \\ measured on | max-F | ort | xnn | ov |" in text
    assert "| xnn | 0.6200 | 1.300 | **1.400** | 1.400 |" in text
    assert "Machine: TestCPU, 2 logical cores." in text and "no: search miss" in text
