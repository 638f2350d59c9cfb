"""Validate a latency table against whole models measured end to end on the same backend.

Models are chosen spread over the whole predicted-latency range (not just where random samples
cluster). A few separate models fit the calibration (``lut.calibrate``); the rest are the
validation set, so the calibrated accuracy is out-of-sample. Reported for both the raw sum and
the calibrated prediction: MAPE, RMSPE, share within ±5 % and ±10 %, worst error, mean signed
error (bias), Kendall τ, Spearman ρ and Pearson r — the measures nn-Meter and iNAS report.
Whole-model measurements are journaled (JSON lines) so an interrupted validation resumes.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deploy.fileio import Journal
from lut import calibrate
from lut.errors import LUTError


@dataclass
class ModelCase:
    """One whole model: a unique ``name``, its block keys, and ``build() -> (module, example_inputs)``."""

    name: str
    keys: list[str]
    build: Callable[[], tuple]


def table_profiler(table, *, runs: int | None = None, artifacts: dict | None = None, host: str | None = None,
                   remote_python: str = "python3", ssh_config: str | None = None):
    """A profiler configured exactly as ``table``'s (backend, threads, precision, options, protocol),
    to measure whole models the table predicts. ``runs`` overrides the protocol's timed runs (whole
    models run 10-100x longer than blocks: fewer runs reach the same time); ``artifacts`` changes how
    whole models are made where the backend allows it (e.g. ``{"exporter": "dynamo"}``); ``host``
    measures through SSH (default: the host the table was built on)."""
    import profilers
    from profilers.stats import Protocol

    b, d = table.backend, table.device
    proto = dict(table.protocol)
    if runs:
        proto["runs"] = int(runs)
    host = host or (d.get("host") if d.get("via") == "ssh" else None)
    remote = {"remote_python": remote_python, "ssh_config": ssh_config} if host else {}
    prof = profilers.from_identity(b, threads=int(d.get("threads") or 1), precision=d.get("precision") or "fp32",
                                   protocol=Protocol.from_dict(proto), host=host, artifacts=artifacts, **remote)
    table.check_compatible(device=prof.device_info(), backend=b["name"])
    return prof


def spread(predicted_ms: Sequence[float], n: int, exclude: set[int] = frozenset()) -> list[int]:
    """Indices of ``n`` candidates whose predictions are spread evenly over their whole range:
    for each of ``n`` evenly spaced targets the nearest not-yet-chosen candidate."""
    p = np.asarray(predicted_ms, dtype=float)
    free = [i for i in range(len(p)) if i not in exclude]
    if n > len(free):
        raise LUTError(f"asked for {n} models spread over the range, only {len(free)} candidates")
    lo, hi = p[free].min(), p[free].max()
    chosen: list[int] = []
    for t in np.linspace(lo, hi, n):
        best = min((i for i in free if i not in chosen), key=lambda i: abs(p[i] - t))
        chosen.append(best)
    return chosen


def accuracy(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> dict:
    from scipy import stats

    p = np.asarray(predicted_ms, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    if p.size < 2:
        raise LUTError("accuracy needs at least 2 models")
    rel = (p - y) / y
    return {
        "n": int(p.size),
        "mape_pct": float(100 * np.abs(rel).mean()),
        "rmspe_pct": float(100 * np.sqrt((rel ** 2).mean())),
        "within_5_pct": float(100 * (np.abs(rel) <= 0.05).mean()),
        "within_10_pct": float(100 * (np.abs(rel) <= 0.10).mean()),
        "max_ape_pct": float(100 * np.abs(rel).max()),
        "mean_signed_pct": float(100 * rel.mean()),
        "kendall_tau": float(stats.kendalltau(p, y).statistic),
        "spearman_rho": float(stats.spearmanr(p, y).statistic),
        "pearson_r": float(stats.pearsonr(p, y).statistic),
    }


def shard_journal(journal: Path, index: int, count: int) -> Path:
    """Journal of shard ``index`` of ``count`` (``measured.jsonl`` → ``measured.1of3.jsonl``)."""
    return journal.with_name(f"{journal.stem}.{index}of{count}{journal.suffix}")


def _journal_identity(profiler, reference: str, reference_artifacts: dict | None = None) -> dict:
    """What a whole-model measurement depends on: device, backend and its settings, timing protocol
    (its ``rounds`` aside: a rerun with more rounds adds windows to the same journal), and the drift
    reference timed beside it, and how that was exported."""
    from lut.build import table_metadata

    meta = table_metadata(profiler, {})
    protocol = {k: v for k, v in meta["protocol"].items() if k != "rounds"}
    return {"device": meta["device"], "backend": meta["backend"], "protocol": protocol, "reference": reference,
            "reference_artifacts": reference_artifacts or None}


def _identity_problem(a: dict, b: dict) -> str | None:
    from lut.reference import REFERENCE_NAME
    from lut.table import compatibility_problem

    problem = compatibility_problem(a, b)
    if problem:
        return problem
    ra, rb = a.get("reference", REFERENCE_NAME), b.get("reference", REFERENCE_NAME)  # journals before it: the small one
    if ra != rb:
        return f"drift reference differs: {ra} vs {rb}"
    xa, xb = a.get("reference_artifacts"), b.get("reference_artifacts")  # journals before it: as the whole models
    return (f"drift reference exported differently: {xa or 'as the whole models'} vs {xb or 'as the whole models'}"
            if xa != xb else None)


def _measured_problem(obj: dict) -> str | None:
    if not isinstance(obj.get("name"), str) or not isinstance(obj.get("measurement"), dict) \
            or not isinstance(obj.get("round", 0), int) or not isinstance(obj.get("ref_ms", 0.0), (int, float, type(None))):
        return "not a whole-model measurement"
    return None


def _measured_journal(path: Path, identity: dict | None) -> Journal:
    return Journal(path, identity, what=f"measurement journal {path}", problem=_identity_problem,
                   check=_measured_problem, lost="one whole-model measurement (measured again by a rerun)")


def _load_journal(path: Path | None, identity: dict | None = None) -> dict[str, dict[int, dict]]:
    """``{name: {round: measurement}}`` of the journal and of its shards (``<stem>.<i>of<k>.jsonl``),
    each checked against ``identity`` (the profiler's: measurements of other settings never mix)."""
    if path is None:
        return {}
    out: dict[str, dict[int, dict]] = {}
    for p in [path, *sorted(path.parent.glob(f"{path.stem}.*of*{path.suffix}"))]:
        for obj in _measured_journal(p, identity).read():
            m = dict(obj["measurement"])
            if obj.get("ref_ms") is not None:  # the reference's median in the same window (lut.reference)
                m["ref_ms"] = float(obj["ref_ms"])
            out.setdefault(obj["name"], {}).setdefault(int(obj.get("round", 0)), m)
    return out


def _export_case(profiler, build: Callable[[], tuple], path: Path) -> tuple[Path, list]:
    module, inputs = build()
    return Path(profiler.export(module, inputs, path)), [tuple(t.shape) for t in inputs]


def _export_ahead(cases: Sequence[ModelCase], profiler, folder: Path, progress: bool) -> dict[str, tuple[Path, list]]:
    """Every distinct model of ``cases`` exported in worker processes before any is timed
    (``lut.export_pool``): an ExecuTorch export of a 320 px inas-sod model takes tens of seconds,
    which one process spent between timings. ``{}`` where the cases or the profiler cannot be sent
    to a worker (a model built by a lambda, an ssh connection): then each is exported in this
    process when first timed."""
    from tqdm import tqdm

    from lut.export_pool import can_pool, default_workers, run_pooled

    unique = list({c.name: c for c in cases}.values())
    jobs = [(profiler, c.build, folder / f"model{i}{profiler.artifact_suffix}") for i, c in enumerate(unique)]
    workers = default_workers()
    if not can_pool(_export_case, jobs, workers, min_jobs=4):
        return {}
    out: dict[str, tuple[Path, list]] = {}
    with tqdm(total=len(jobs), desc="exporting whole models", unit="model", disable=not progress) as bar:
        def done(i: int, result) -> None:
            out[unique[i].name] = result
            bar.update()

        run_pooled(_export_case, jobs, workers, done)
    return out


def measure_cases(cases: Sequence[ModelCase], profiler, journal: Path | None = None, progress: bool = True,
                  seed: int = 0, shard: tuple[int, int] | None = None, rounds: int = 1,
                  reference: str | None = None, reference_artifacts: dict | None = None) -> dict[str, dict]:
    """``{name: Measurement dict}``, measuring in a seeded random order; resumes from ``journal``.

    ``rounds`` > 1 measures every model that many times, round-robin (each round in a fresh random
    order, each model exported once) and keeps the fastest window (``profilers.stats.pool``): on a
    virtual machine the speed drifts by 10-35 % over seconds, only ever slower, and one window per
    model would put that drift into the model's number.

    Models are exported before any is timed, in worker processes on every core where they can be
    sent to one (:func:`_export_ahead`), instead of one by one between timings.

    ``shard=(i, k)`` measures only every k-th model (from the i-th, 1-based) into that shard's
    journal, so k processes can measure side by side; a later unsharded call reads them all.

    ``reference``: the drift reference timed beside each model (``lut.reference``): the table's, so
    the ratios are in its units (default the small one); ``reference_artifacts``: how the table made
    its artifacts (its ``backend["artifacts"]``), so the reference is exported as the build exported it
    (:meth:`profilers.base.Profiler.exporting_as`), whichever way the whole models are made.
    """
    import tempfile

    from tqdm import tqdm

    if rounds < 1:
        raise LUTError(f"rounds must be >= 1, got {rounds}")
    from lut.reference import REFERENCE_NAME

    reference = reference or REFERENCE_NAME
    identity = _journal_identity(profiler, reference, reference_artifacts) if journal is not None else None
    done = _load_journal(journal, identity)
    if shard is not None:
        i, k = shard
        cases = [c for n, c in enumerate(cases) if n % k == i - 1]
        journal = shard_journal(journal, i, k) if journal is not None else None
    todo = []
    for r in range(rounds):
        order = [c for c in cases if r not in done.get(c.name, {})]
        random.Random(f"{seed}|{r}").shuffle(order)
        todo += [(r, c) for c in order]
    # one writer per journal (a second is refused naming the first); rows fsynced as they come
    f = _measured_journal(journal, identity).open() if journal is not None else None
    artifacts: dict[str, tuple[Path, list]] = {}
    interleaved = bool(getattr(profiler, "can_interleave", False)) and todo
    try:
        with tempfile.TemporaryDirectory(prefix="hwnas-validate-") as tmp:
            artifacts = _export_ahead([c for _, c in todo], profiler, Path(tmp), progress)
            if interleaved:  # whole models are timed against the same reference as the table's blocks
                from lut.reference import reference_model

                ref_module, ref_inputs = reference_model(reference)
                ref_exporter = profiler.exporting_as(reference_artifacts)
                ref = (ref_exporter.export(ref_module, ref_inputs, Path(tmp) / f"reference{profiler.artifact_suffix}"),
                       [tuple(t.shape) for t in ref_inputs])
            for r, case in tqdm(todo, desc="whole models" + (f" x {rounds} rounds" if rounds > 1 else ""), unit="model",
                                disable=not progress):
                if case.name not in artifacts:  # exported once, measured in every round
                    path = Path(tmp) / f"model-{len(artifacts)}{profiler.artifact_suffix}"
                    artifacts[case.name] = _export_case(profiler, case.build, path)
                record = {"name": case.name, "round": r}
                if interleaved:
                    got = profiler.measure_together({"model": artifacts[case.name], "ref": ref},
                                                    seed=zlib.crc32(f"{seed}|{case.name}|{r}".encode()), reference="ref")
                    m = got["model"].to_dict()
                    record["ref_ms"] = got["ref"].median_ms
                else:
                    m = profiler.measure_artifact(*artifacts[case.name]).to_dict()
                record["measurement"] = m
                done.setdefault(case.name, {})[r] = dict(m, **({"ref_ms": record["ref_ms"]} if "ref_ms" in record else {}))
                if f:
                    f.append(record)
                if rounds == 1:  # nothing to come back for: free the artifact
                    artifacts.pop(case.name)[0].unlink(missing_ok=True)
    finally:
        if f:
            f.close()
    from profilers.stats import Measurement, pool

    iqr = getattr(getattr(profiler, "protocol", None), "unstable_iqr", 0.10)
    out = {}
    for name, by_round in done.items():
        chosen = [by_round[r] for r in sorted(by_round) if r < rounds] or [by_round[min(by_round)]]
        out[name] = pool([Measurement.from_dict(m) for m in chosen], iqr).to_dict()
        out[name]["round_medians_ms"] = [float(m["median_ms"]) for m in chosen]
        if all(m.get("ref_ms") for m in chosen):
            # drift-compensated: each window's median relative to its reference, one ratio per round
            out[name]["round_ref_ms"] = [float(m["ref_ms"]) for m in chosen]
            out[name]["round_ratios"] = [float(m["median_ms"]) / float(m["ref_ms"]) for m in chosen]
    return out


def normalized_ms(measurement: dict, reference_ms: float | None) -> float | None:
    """A whole model's drift-compensated latency: the median of its rounds' ratios to the reference,
    in ``reference_ms`` (the table's reference speed, ``lut.table.reference_speed_ms``), or ``None`` without a reference."""
    ratios = measurement.get("round_ratios")
    if not ratios or not reference_ms:
        return None
    return float(np.median(ratios)) * float(reference_ms)


def retest_spread(measured: dict[str, dict]) -> dict | None:
    """Test-retest of whole models measured in >= 2 rounds (far apart in time: every other model is
    measured in between): relative difference between the first two rounds, raw and normalized,
    and the Kendall τ of the first round's times against the second's (``*_kendall_tau``, with >= 3
    models): the floor no table can beat on this machine, for the error and for the ranking."""
    from scipy import stats

    raw, norm, raw_pairs, norm_pairs = [], [], [], []
    for m in measured.values():
        r = m.get("round_medians_ms") or []
        if len(r) >= 2:
            raw.append(abs(r[0] - r[1]) / (0.5 * (r[0] + r[1])))
            raw_pairs.append(r[:2])
        q = m.get("round_ratios") or []
        if len(q) >= 2:
            norm.append(abs(q[0] - q[1]) / (0.5 * (q[0] + q[1])))
            norm_pairs.append(q[:2])
    if not raw:
        return None

    def tau(pairs):
        a, b = np.asarray(pairs, dtype=float).T
        return float(stats.kendalltau(a, b).statistic)

    out = {"n": len(raw), "raw_median_pct": float(100 * np.median(raw)), "raw_p90_pct": float(100 * np.percentile(raw, 90)),
           "raw_within_5_pct": float(100 * np.mean(np.array(raw) <= 0.05))}
    if len(raw_pairs) >= 3:
        out["raw_kendall_tau"] = tau(raw_pairs)
    if norm:
        out.update(normalized_median_pct=float(100 * np.median(norm)),
                   normalized_p90_pct=float(100 * np.percentile(norm, 90)),
                   normalized_within_5_pct=float(100 * np.mean(np.array(norm) <= 0.05)))
        if len(norm_pairs) >= 3:
            out["normalized_kendall_tau"] = tau(norm_pairs)
    return out


def retest_tau_text(retest: dict) -> str:
    """"round 1 vs round 2 tau: raw …, drift-compensated …" from :func:`retest_spread`'s result, or ""."""
    taus = ", ".join(f"{what} {retest[k]:.3f}" for what, k in (("raw", "raw_kendall_tau"),
                                                              ("drift-compensated", "normalized_kendall_tau")) if k in retest)
    return f"round 1 vs round 2 tau: {taus}" if taus else ""


def validate(table, calibration_cases: Sequence[ModelCase], validation_cases: Sequence[ModelCase], profiler,
             journal: Path | None = None, progress: bool = True, calibration_kind: str = "auto",
             shard: tuple[int, int] | None = None, rounds: int = 1) -> dict | None:
    """Measure both sets, fit the calibration on the first, report accuracy on the second
    (``None`` for a shard: it only measures its part). ``rounds``: see :func:`measure_cases`.

    Two predictions of the same measured models, side by side: ``raw`` is the plain sum of
    isolated blocks against the fastest window (the baseline), ``model`` the table's prediction
    (:meth:`lut.table.LatencyTable.model_ms`) against the drift-compensated measurement (each
    window's ratio to the reference, in the table's reference time; the raw one where the backend
    has no reference). ``raw_vs_target`` and ``model_vs_raw`` cross them, so the two effects
    (context costs, drift compensation) can be told apart; ``retest`` is the floor."""
    import numpy as np

    measured = measure_cases([*calibration_cases, *validation_cases], profiler, journal, progress, shard=shard,
                             rounds=rounds, reference=table.reference_name,
                             reference_artifacts=table.backend.get("artifacts"))
    if shard is not None:
        return None

    def target(c):  # what the table's prediction is scored against
        norm = normalized_ms(measured[c.name], table.reference_ms)
        return norm if norm is not None else measured[c.name]["median_ms"]

    pred_cal = [table.model_ms(c.keys) for c in calibration_cases]
    y_cal = [target(c) for c in calibration_cases]
    n_cal = [len(c.keys) for c in calibration_cases]
    cal, refused = None, None
    if len(calibration_cases) >= calibrate.MIN_MODELS:
        try:
            cal = calibrate.fit(pred_cal, y_cal, n_cal, kind=calibration_kind)
            cal["fitted_on"] = "model_ms" if table.has_context else "raw_sum_ms"
        except LUTError as e:  # a refused fit (too few models, inverted ranks) still leaves the prediction's report
            refused = str(e)
    report = {"calibration": cal, "calibration_refused": refused, "models": [], "latency_model": "context" if table.has_context else "plain sum",
              "reference_ms": table.reference_ms, "call_ms": table.call_ms, "rounds": rounds}
    for c in validation_cases:
        m = measured[c.name]
        row = {"name": c.name, "n_blocks": len(c.keys), "raw_sum_ms": table.raw_sum_ms(c.keys),
               "model_ms": table.model_ms(c.keys), "measured_ms": m["median_ms"], "target_ms": target(c),
               "measured_iqr_over_median": m["iqr_over_median"], "measured_unstable": m["unstable"],
               "measured_round_medians_ms": m.get("round_medians_ms")}
        if m.get("round_ratios"):
            row["measured_round_ratios"] = m["round_ratios"]
        if cal:
            row["calibrated_ms"] = calibrate.apply(cal, row["model_ms"], len(c.keys))
        report["models"].append(row)
    rows = report["models"]
    if len(rows) >= 2:
        col = lambda k: [r[k] for r in rows]  # noqa: E731
        report["raw"] = accuracy(col("raw_sum_ms"), col("measured_ms"))
        report["model"] = accuracy(col("model_ms"), col("target_ms"))
        report["raw_vs_target"] = accuracy(col("raw_sum_ms"), col("target_ms"))
        report["model_vs_raw"] = accuracy(col("model_ms"), col("measured_ms"))
        if cal:
            report["calibrated"] = accuracy(col("calibrated_ms"), col("target_ms"))
    report["retest"] = retest_spread({c.name: measured[c.name] for c in validation_cases})
    # how fast this machine runs the reference now, against the build: a host that shows the same
    # fingerprint but runs slower (a busy neighbour, another host of the same CPU) shows here
    now = [x for c in validation_cases for x in (measured[c.name].get("round_ref_ms") or [])]
    if now and table.reference_ms:
        report["reference_now_ms"] = float(np.median(now))
        report["reference_now_vs_build"] = report["reference_now_ms"] / table.reference_ms
    report["calibration_models"] = [
        {"name": c.name, "n_blocks": len(c.keys), "model_ms": p, "raw_sum_ms": table.raw_sum_ms(c.keys), "target_ms": y}
        for c, p, y in zip(calibration_cases, pred_cal, y_cal)]
    return report
