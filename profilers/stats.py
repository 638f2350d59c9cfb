"""Timing protocol and statistics: the floor every profiler follows.

Protocol (see docs/practice.md, "Measuring latency"): discard a warm-up of at least
``warmup_runs`` runs *and* ``warmup_s`` seconds; then time at least ``runs`` runs *and*
``min_time_s`` seconds, keeping every raw sample. A measurement whose IQR/median exceeds
``unstable_iqr`` is repeated (up to ``max_attempts`` in all) and the steadiest attempt is kept,
flagged ``unstable`` if none passed.

``clock`` picks what a sample measures: ``wall`` (``time.perf_counter``, the latency a user
sees) or ``thread_cpu`` (``time.thread_time``, CPU time of the calling thread). For a
single-threaded backend that computes in the calling thread (ONNX Runtime, PyTorch, ExecuTorch
at 1 thread) the two agree on an idle machine, but on a shared machine preemption inflates wall
time (a 6 ms conv read 14 ms median wall, 6.2 ms CPU, next to other jobs), while CPU time stays
put. ``thread_cpu`` is refused for more than one thread, and a measurement where the calling
thread used less than half of the process's CPU time (the work ran on another thread) is an
error, not a number.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from profilers.errors import ProfilerError


CLOCKS = ("wall", "thread_cpu")


@dataclass(frozen=True)
class Protocol:
    warmup_runs: int = 10
    warmup_s: float = 0.2
    runs: int = 50
    min_time_s: float = 1.0
    unstable_iqr: float = 0.10  # torch.utils.benchmark warns past IQR/median 0.10
    max_attempts: int = 3
    max_runs: int = 100_000  # cap: a sub-microsecond op must not loop forever
    clock: str = "wall"  # "wall" | "thread_cpu"
    # a job measuring many configurations (a LUT build, a validation) measures each in ``rounds``
    # windows, round-robin over the job, and keeps the fastest (``pool``): a virtual machine's speed
    # drifts by 10-35 % over seconds, and one window would put that drift into a single configuration
    rounds: int = 1
    # interleaved timing (time_interleaved): a turn opens with untimed runs that fill at least this many
    # ms of the callable's own run time (1 to SETTLE_MAX_RUNS runs; 0: always 1). Why: the run after
    # a switch pays what the predecessor left in the caches, and for a sub-0.1 ms callable the next
    # one still does: the 0.046 ms reference ran 0.146 / 0.051 / 0.047 / 0.0467 ms in its 1st-4th
    # runs after a 177 ms inas-sod model (0.0462 steady), so its median over runs 2-3 stood 4-5 %
    # higher beside whole models than beside blocks, and a table validated 4 % high against it
    # (ExecuTorch XNNPACK, bench/results/lut_accuracy_sod-xnnpack1-v4.md). On an Intel host the slow
    # runs last ~1 ms (bench/reference_transient.py): `hwnas lut build` uses 2 (BUILD_PROTOCOL).
    settle_ms: float = 0.0
    # the drift reference's turns (time_interleaved's ``reference``) open with at least this many untimed
    # runs (0: it settles by settle_ms like any callable). Why: after a whole 320 px model the 2-5 ms
    # 256 px reference runs slow for several runs, not 2 ms: ONNX Runtime 1 / 2 threads 1.32 / 1.36x
    # in run 1, 1.10 / 1.14x in run 2, <= 1.008x from run 3; ExecuTorch XNNPACK 1.46x, 1.22x, 1.09x in
    # runs 3-5, 1.014x in runs 6-20 (bench/reference_transient.py, Intel model 167: results
    # reference_transient_onnxruntime-cpu{1,2}_inas-sod_320_ref256-m167.md,
    # reference_transient_executorch-xnnpack1_inas-sod_320.md). With settle_ms alone (one untimed run)
    # its recorded runs 2-3 read it slow beside whole models but not beside blocks: a build window's
    # reference / a validation window's, same moments, blocks unflushed: XNNPACK 0.942 (1.00 with every
    # turn settled 100 ms), ORT 2 threads 0.975 (1.001 with 5 runs) (bench/reference_windows.py).
    # 5 runs cover the transient at ~1/5 of the cost of settling every callable. `hwnas lut build` uses 5.
    reference_settle_runs: int = 0
    # threads that share a cache flush (profilers.cache.CacheFlush) before a context run; 0: as many as
    # the runtime runs (the profiler's ``threads``). Why: with 1 the flush runs on the calling thread
    # alone while a multi-threaded runtime's other threads wait idle, and at ONNX Runtime 2 threads the
    # 256 px reference read 1.10-1.12x slower in a build's flushed windows than beside whole models at
    # the same moments (1.00 in the same windows unflushed; 1.016 at 1 thread); split over both threads
    # 0.991 (bench/reference_windows.py --seed 99, Intel model 167). `hwnas lut build` uses 0. Tables
    # built before record no field: 1, the flush they were built with.
    flush_threads: int = 1
    # the drift reference takes a turn every this many cycles and records this many times the runs of a
    # turn there, so it keeps its sample count while paying its settling runs (reference_settle_runs)
    # once per that many cycles. Why: a 320 px inas-sod build spent 54 % of its timing on the reference's
    # runs, 5 of every 7 of them untimed settling (bench/build_time_split.py, AMD EPYC); its turns stay
    # spread over the whole window, so a slow spell still lands on it and the blocks alike.
    # 1: every cycle (tables built before record no field). `hwnas lut build` uses 2.
    reference_every: int = 1

    def __post_init__(self):
        if self.warmup_runs < 10 or self.warmup_s < 0.2:
            raise ProfilerError(
                f"warm-up must be >= 10 runs and >= 0.2 s (got {self.warmup_runs} runs, {self.warmup_s} s)"
            )
        if self.clock not in CLOCKS:
            raise ProfilerError(f"clock {self.clock!r} unknown; allowed: {list(CLOCKS)}")
        if (self.runs < 1 or self.min_time_s < 0 or self.max_attempts < 1 or self.rounds < 1 or self.settle_ms < 0
                or not 0 <= self.reference_settle_runs <= SETTLE_MAX_RUNS or self.flush_threads < 0
                or self.reference_every < 1):
            raise ProfilerError(f"runs >= 1, min_time_s >= 0, max_attempts >= 1, rounds >= 1, settle_ms >= 0, "
                                f"0 <= reference_settle_runs <= {SETTLE_MAX_RUNS}, flush_threads >= 0 and "
                                f"reference_every >= 1 required, "
                                f"got {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Measurement:
    """Raw samples plus statistics of one configuration on one backend (all times in ms)."""

    samples_ms: list[float]
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p90_ms: float
    p99_ms: float
    iqr_over_median: float
    warmup_runs: int
    runs: int
    unstable: bool
    attempts: int = 1
    info: dict = field(default_factory=dict)  # backend settings (threads, precision, ...)

    @classmethod
    def from_samples(cls, samples_ms, warmup_runs: int, unstable_iqr: float = 0.10, attempts: int = 1,
                     info: dict | None = None) -> Measurement:
        s = np.asarray(samples_ms, dtype=np.float64)
        if s.size == 0:
            raise ProfilerError("no timed samples were collected")
        med = float(np.median(s))
        q1, q3 = np.percentile(s, [25, 75])
        iqr = float((q3 - q1) / med) if med > 0 else 0.0
        return cls(
            samples_ms=[float(x) for x in s],
            median_ms=med,
            mean_ms=float(s.mean()),
            std_ms=float(s.std(ddof=1)) if s.size > 1 else 0.0,
            min_ms=float(s.min()),
            p90_ms=float(np.percentile(s, 90)),
            p99_ms=float(np.percentile(s, 99)),
            iqr_over_median=iqr,
            warmup_runs=int(warmup_runs),
            runs=int(s.size),
            unstable=iqr > unstable_iqr,
            attempts=attempts,
            info=dict(info or {}),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def summary(self) -> str:
        flag = "  UNSTABLE" if self.unstable else ""
        return (f"median {self.median_ms:.4f} ms  mean {self.mean_ms:.4f}  std {self.std_ms:.4f}  "
                f"min {self.min_ms:.4f}  p90 {self.p90_ms:.4f}  p99 {self.p99_ms:.4f}  "
                f"IQR/median {self.iqr_over_median:.3f}  runs {self.runs} (+{self.warmup_runs} warm-up){flag}")


def time_callable(run: Callable[[], object], protocol: Protocol, clock: Callable[[], float] | None = None,
                  info: dict | None = None) -> Measurement:
    """Measure ``run()`` (which must block until the result is ready) under ``protocol``.

    ``clock`` (seconds) overrides the protocol's clock (CUDA events, tests); only ``run()``
    itself is inside the timed region.
    """
    if clock is None:
        clock = time.thread_time if protocol.clock == "thread_cpu" else time.perf_counter
    check_cpu = clock is time.thread_time
    best: Measurement | None = None
    for attempt in range(1, protocol.max_attempts + 1):
        warm, t0 = 0, clock()
        while warm < protocol.warmup_runs or clock() - t0 < protocol.warmup_s:
            run()
            warm += 1
        samples: list[float] = []
        wall: list[float] = []
        t_start, proc0 = clock(), time.process_time()
        while (len(samples) < protocol.runs or clock() - t_start < protocol.min_time_s) and len(samples) < protocol.max_runs:
            w, a = time.perf_counter(), clock()
            run()
            samples.append((clock() - a) * 1e3)
            wall.append((time.perf_counter() - w) * 1e3)
        extra = dict(info or {})
        if check_cpu:
            # all threads of the process vs this thread: if the work ran elsewhere, CPU time of
            # this thread is not the latency (independent of how loaded the machine is)
            proc_ms, own_ms = (time.process_time() - proc0) * 1e3, float(np.sum(samples))
            if own_ms < 0.5 * proc_ms:
                raise ProfilerError(
                    f"clock thread_cpu: the calling thread used {own_ms:.1f} ms of the process's {proc_ms:.1f} ms CPU "
                    "time: the work runs on other threads; use clock 'wall'")
            extra.update(clock="thread_cpu", wall_median_ms=float(np.median(wall)), wall_min_ms=float(np.min(wall)))
        m = Measurement.from_samples(samples, warm, protocol.unstable_iqr, attempt, extra)
        if best is None or m.iqr_over_median < best.iqr_over_median:
            best = m
        if not m.unstable:
            break
    best.attempts = attempt
    return best


# runs recorded per turn in an interleaved window is INTERLEAVE_BATCH - 1: a turn's first run after a
# switch is not recorded, nor further ones up to Protocol.settle_ms (see time_interleaved)
INTERLEAVE_BATCH = 3
SETTLE_MAX_RUNS = 64  # bounds a turn of a sub-0.03 ms callable (64 runs: under 2 ms)
SETTLE_WARMUP_BOUND = 10  # x settle_ms: a first run after a switch this slow is not re-run in the warm-up


def time_interleaved(runs: dict[str, Callable[[], object]], protocol: Protocol, seed: int = 0,
                     clock: Callable[[], float] | None = None, info: dict | None = None,
                     batch: int = INTERLEAVE_BATCH,
                     before: dict[str, Callable[[], object]] | None = None,
                     reference: str | None = None) -> dict[str, Measurement]:
    """Measure several prepared callables side by side: randomised interleaved trials.

    Each cycle gives every callable one turn, in a fresh random order (Abedi & Brecht, ICPE'17;
    duet benchmarking, Bulej et al., ICPE'20), so a slow spell of the machine lands on all of them
    alike and their *ratios* stay put even when their absolute times drift. A turn is ``batch``
    runs back to back of which the first is not recorded: right after a switch a callable runs in
    the caches its predecessor left (measured: a small reference model interleaved run for run ran
    ~5 % slower beside whole models than beside single blocks), while the recorded runs see the
    warm caches a back-to-back benchmark sees; a callable faster than ``protocol.settle_ms`` gets
    more untimed runs at a turn's start, enough to fill that time (at most ``SETTLE_MAX_RUNS``,
    judged by its warm-up median), since one run does not settle it (a callable with a ``before`` gets
    one untimed run only). Warm-up and the timed window
    follow ``protocol`` (each callable gets >= ``runs`` samples; the window lasts >= ``min_time_s``). Returns one
    :class:`Measurement` per name; re-measured (up to ``max_attempts``) while the first name's
    IQR/median is past ``unstable_iqr``. ``before[name]``, where given, runs before every run of
    ``name``, outside the timed region (a cache flush: ``profilers.cache``). ``reference``: the name of
    the drift reference, whose turns open with at least ``protocol.reference_settle_runs`` untimed runs
    and come every ``protocol.reference_every`` cycles, each recording that many turns' runs.
    """
    import random as _random

    if not runs:
        raise ProfilerError("nothing to time")
    if batch < 1:
        raise ProfilerError(f"batch must be >= 1, got {batch}")
    if clock is None:
        clock = time.thread_time if protocol.clock == "thread_cpu" else time.perf_counter
    names = list(runs)
    rng = _random.Random(seed)
    skip = 1 if batch > 1 else 0
    pre = {n: (before or {}).get(n) or _nothing for n in names}
    best: dict[str, Measurement] | None = None
    for attempt in range(1, protocol.max_attempts + 1):
        warm, t0 = 0, clock()
        warm_ms: dict[str, list[float]] = {n: [] for n in names}  # each turn's settled run, for the skip
        while warm < protocol.warmup_runs or clock() - t0 < protocol.warmup_s:
            for n in names:
                for again in range(2):
                    pre[n]()
                    a = clock()
                    runs[n]()
                    ms = (clock() - a) * 1e3
                    # the first run after a switch is unsettled; a second shows the callable's own
                    # speed, needed only where it may need more than one untimed run
                    if again or ms >= SETTLE_WARMUP_BOUND * protocol.settle_ms:
                        warm_ms[n].append(ms)
                        break
            warm += 1
        # a callable with a ``before`` (a cache flush, a model run) starts every run cold on purpose:
        # untimed runs cannot settle it, they would only repeat the flush
        skips = {n: skip if (before or {}).get(n) else _turn_skip(skip, float(np.median(warm_ms[n])), protocol.settle_ms)
                 for n in names}
        if reference in skips and skip:
            skips[reference] = max(skips[reference], protocol.reference_settle_runs)
        recorded = {n: batch - skip for n in names}
        # the first name's samples end the window: as the reference it keeps a turn every cycle
        every = protocol.reference_every if reference in runs and reference != names[0] else 1
        if every > 1:
            recorded[reference] *= every
        samples: dict[str, list[float]] = {n: [] for n in names}
        t_start, cycle = clock(), 0
        while ((len(samples[names[0]]) < protocol.runs or clock() - t_start < protocol.min_time_s)
               and len(samples[names[0]]) < protocol.max_runs):
            order = names[:] if cycle % every == 0 else [n for n in names if n != reference]
            rng.shuffle(order)
            cycle += 1
            for n in order:
                run, pre_run, skip_n = runs[n], pre[n], skips[n]
                for k in range(skip_n + recorded[n]):
                    pre_run()
                    a = clock()
                    run()
                    if k >= skip_n:
                        samples[n].append((clock() - a) * 1e3)
        got = {n: Measurement.from_samples(samples[n], warm, protocol.unstable_iqr, attempt,
                                           dict(info or {}, interleaved_with=[m for m in names if m != n],
                                                interleave_batch=batch, interleave_skip=skips[n],
                                                **({"interleave_every": every} if n == reference and every > 1 else {})))
               for n in names}
        if best is None or got[names[0]].iqr_over_median < best[names[0]].iqr_over_median:
            best = got
        if not got[names[0]].unstable:
            break
    for m in best.values():
        m.attempts = attempt
    return best


def _nothing() -> None:
    return None


def _turn_skip(skip: int, warm_median_ms: float, settle_ms: float) -> int:
    """Untimed runs at the start of a turn: ``skip``, or as many runs as fill ``settle_ms`` of a
    callable that fast (at most ``SETTLE_MAX_RUNS``)."""
    import math

    if skip == 0 or settle_ms <= 0 or warm_median_ms <= 0:
        return skip
    return int(min(SETTLE_MAX_RUNS, max(skip, math.ceil(settle_ms / warm_median_ms))))


def trimmed_mean(values: list[float], cut: float = 0.1) -> float:
    """Mean of the middle values (``cut`` off each end). Runtime profilers report whole microseconds:
    a 2 us node's median is 2 or 3, while the mean of many runs resolves fractions; trimming keeps a
    preempted run out."""
    if not values:
        return 0.0
    v = np.sort(np.asarray(values, dtype=float))
    k = int(len(v) * cut)
    return float(v[k: len(v) - k].mean())


def pool(measurements: list[Measurement], unstable_iqr: float = 0.10) -> Measurement:
    """One measurement of a configuration measured in several windows (rounds): the fastest
    window's, with every window's median and run count in ``info``.

    Why the fastest: the disturbances seen here only ever slow a window down (a virtual machine
    running 20-35 % slow for seconds at a time, a neighbour's job), never speed it up, so the
    lowest window median is the least disturbed estimate (the reasoning of Python's ``timeit``).
    Evidence is mixed: re-scoring one inas-sod ORT build offline, it cut the MAPE from 4.9 % (pooled
    samples) to 3.1 % (bench/results/lut_window_estimators.md), but a fresh build and validation
    with it scored 6.6 % (lut_accuracy_sod-ort1-fw.md): this VM's noise swamps the difference.
    """
    if not measurements:
        raise ProfilerError("nothing to pool")
    if len(measurements) == 1:
        return measurements[0]
    best = min(measurements, key=lambda m: m.median_ms)
    info = dict(best.info)
    info.update(rounds=len(measurements), round_medians_ms=[m.median_ms for m in measurements],
                round_runs=[m.runs for m in measurements], pooled="fastest window")
    return Measurement.from_samples(best.samples_ms, sum(m.warmup_runs for m in measurements), unstable_iqr,
                                    sum(m.attempts for m in measurements), info)


def from_external_samples(samples_ms, warmup_runs: int, protocol: Protocol, info: dict | None = None) -> Measurement:
    """Statistics of samples timed by another tool (trtexec, executor_runner, a remote host)."""
    return Measurement.from_samples(samples_ms, warmup_runs, protocol.unstable_iqr, 1, info)
