"""hwnas lut build|show|predict|calibrate|validate — wires hwnas search spaces to ``lut``."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from hwnas.cli.argtypes import int_list, non_negative_int, positive_int, shard
from hwnas.cli.profilers import add_backend_args, make_profiler

# runs 50 (timed runs per callable and window, >= 0.2 s of them): a block's cost is a ratio of two window
# medians, whose sampling error at 50 runs (~0.7 % at an IQR of 5 %) averages out over a model's ~30 blocks,
# while the build's time is proportional to the runs: with 100, an inas-sod build at 320 px took 6.3 s per
# block on the AMD EPYC host (97 min projected), with 50 3.4 s (53 min), the same 16 blocks back to back
# (bench/build_time_split.py --runs); scored on a fresh build and fresh models (README).
# settle_ms: a fast callable's turn opens with untimed runs filling 2 ms (profilers.stats.time_interleaved):
# on the Intel host the 32 px reference ran ~5 % slow for ~1 ms after a whole 320 px model (runs 2-20 after
# it), so with 0.2 ms it read 0.955x as fast in a build's windows as in a validation's (p10-p90 0.925-1.005),
# with 2 ms 1.003x (0.996-1.006)
# (bench/reference_windows.py --space inas-sod --resolution 320 --seed 52 --settle-ms 0.2 / 2).
# reference_settle_runs: the 2-5 ms 256 px reference needs ~3-5 runs to recover from a whole model
# (profilers.stats.Protocol.reference_settle_runs); costs 4 of its runs per turn, paid every other cycle
# (reference_every 2: its turns record two turns' runs; profilers.stats.Protocol.reference_every). flush_threads 0: the
# cache flush before a block's runs is shared by as many threads as the runtime runs
# (profilers.stats.Protocol.flush_threads).
# max_attempts 2: a window is measured again when the isolated block's IQR/median passes 0.10. It costs
# time on a noisy host (AMD EPYC 2-core VM: 70 % of inas-sod blocks at 320 px measured twice, 7.3 s per
# block with ONNX Runtime 1 thread, bench/build_time_split.py), but one window per block scored worse
# there on inas-tiny at 64 px, builds A/B/A with 2/1/2: MAPE 12.4 / 19.4 / 11.7 % on the same 12 models
# (the 1-window validation ran in a 1.14x slower machine state, so not conclusive); kept at 2 until an
# A/B says otherwise.
BUILD_PROTOCOL = {"runs": 50, "min_time_s": 0.2, "max_attempts": 2, "settle_ms": 2.0, "reference_settle_runs": 5,
                  "flush_threads": 0, "reference_every": 2}


def register(sub) -> None:
    p = sub.add_parser("lut", help="latency lookup tables: build (resumable), show, predict, calibrate, validate",
                       description="Example: hwnas lut build --space inas-sod --backend onnxruntime-cpu --threads 1 "
                       "--resolutions 320 --out luts/ort1.parquet")
    s = p.add_subparsers(dest="lut_command", metavar="ACTION", required=True)

    q = s.add_parser("build", help="measure every distinct block of a space (resumable: rerun to continue)")
    q.add_argument("--space", required=True, help="built-in space name or YAML file")
    q.add_argument("--resolutions", type=int_list, default=None, help="comma-separated input sizes (default: all of the space)")
    q.add_argument("--out", "-o", required=True, help="output .parquet (a journal next to it makes it resumable)")
    q.add_argument("--seed", type=non_negative_int, default=0, help="seed of the randomised measuring order")
    q.add_argument("--rounds", type=positive_int, default=None,
                   help="measure the whole table this many times, each pass in a new order (default 1: every block "
                        "is timed against an interleaved reference, which cancels the machine's drift); a block's "
                        "context cost is then the median of its windows' ratios to the reference, its plain median "
                        "the fastest window's")
    q.add_argument("--limit", type=positive_int, default=None, help="stop after this many new blocks (a rerun continues)")
    q.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"],
                   help="how blocks are exported: torchscript (default) = the TorchScript ONNX exporter, ~50x faster "
                        "for onnxruntime/tensorrt, a little faster for openvino (read by its ONNX frontend); "
                        "dynamo = the path `hwnas export` deploys")
    q.add_argument("--no-progress", action="store_true")
    add_backend_args(q)
    q.set_defaults(func=_build)

    q = s.add_parser("merge", help="join tables/journals of the same space, device, backend and protocol")
    q.add_argument("inputs", nargs="+", help="finished .parquet tables or unfinished <out>.journal.jsonl files")
    q.add_argument("--out", "-o", required=True)
    q.set_defaults(func=_merge)

    q = s.add_parser("show", help="a table's identity, size and statistics")
    q.add_argument("lut")
    q.add_argument("--rows", type=non_negative_int, default=0, help="also print the N slowest blocks")
    q.set_defaults(func=_show)

    q = s.add_parser("predict", help="predicted latency (ms) of an architecture")
    q.add_argument("--lut", required=True)
    q.add_argument("--arch", required=True, help="ARCH.json or compact string")
    q.add_argument("--space", default=None, help="space YAML when the table's space is not built in")
    q.add_argument("--breakdown", action="store_true", help="predicted cost per block kind")
    q.add_argument("--json", action="store_true", help='one JSON object: {"predicted_ms": ..., "raw_sum_ms": ..., ...}')
    q.set_defaults(func=_predict)

    for name, hlp in (("validate", "measure sampled whole models; report the table's accuracy"),
                      ("calibrate", "fit the table's calibration on measured whole models and save it")):
        q = s.add_parser(name, help=hlp)
        q.add_argument("--lut", required=True)
        q.add_argument("--space", default=None, help="space YAML when the table's space is not built in")
        if name == "validate":
            q.add_argument("--n", type=positive_int, default=50, help="validation models (default 50)")
            q.add_argument("--calibrate", type=non_negative_int, default=10, help="separate models to fit the calibration on")
            q.add_argument("--save-calibration", action="store_true", help="store the fitted calibration in the table")
            q.add_argument("--out-dir", default=None, help="report.json + scatter.png (default: <lut>.validation/)")
            q.add_argument("--shard", type=shard, default=None, metavar="I/K",
                           help="measure only part I of K of the models (K processes side by side); "
                                "a final run without --shard reports")
        else:
            q.add_argument("--n", type=positive_int, default=10, help="models to fit on (default 10)")
        q.add_argument("--kind", default="auto", choices=["auto", "affine", "affine+count"],
                       help="calibration model (auto: the one with the lower leave-one-out error; affine+count needs >= 12 models)")
        q.add_argument("--resolution", type=positive_int, default=None, help="default: the table's resolutions")
        q.add_argument("--candidates", type=positive_int, default=2000, help="sampled architectures to spread the models over")
        q.add_argument("--seed", type=non_negative_int, default=0)
        q.add_argument("--rounds", type=positive_int, default=2,
                       help="measure every whole model this many times, round-robin, each window against the "
                            "interleaved reference (default 2: the two rounds, far apart in time, give the "
                            "test-retest spread; the prediction is scored against the median of the rounds' ratios)")
        q.add_argument("--runs", type=positive_int, default=None,
                       help="timed runs per whole model (default: the table's protocol; warm-up and clock stay the table's)")
        q.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"],
                       help="how whole models are exported (onnxruntime/tensorrt/openvino): dynamo = the deployed "
                            "artifact (default), torchscript = the blocks' exporter, faster to export")
        q.add_argument("--host", default=None, help="SSH host (default: the one the table was built through)")
        q.add_argument("--remote-python", default="python3")
        q.add_argument("--ssh-config", default=None)
        q.add_argument("--no-progress", action="store_true")
        q.set_defaults(func=_validate if name == "validate" else _calibrate)


# ------------------------------------------------------------------------------ helpers
def _space_for(table, override: str | None):
    from hwnas.errors import SpaceError
    from hwnas.space import create
    from lut.errors import LUTError

    name = override or table.space.get("name")
    try:
        space = create(name)
    except SpaceError as e:
        raise LUTError(f"the table's space {name!r} cannot be loaded ({e}); pass --space FILE.yaml") from None
    table.check_compatible(space_hash=space.hash)
    return space


def _resolutions(res: list[int] | None, space) -> list[int]:
    """``--resolutions`` (parsed by ``argtypes.int_list``: never empty) checked against the space."""
    from hwnas.errors import ArchError

    if res is None:
        return list(space.resolutions)
    bad = [r for r in res if r not in space.resolutions]
    if bad:
        raise ArchError(f"--resolutions {bad} not in space {space.name}; allowed: {list(space.resolutions)}")
    return res


def _exporter_options(backend: str, exporter: str) -> dict:
    """``--exporter`` for the backends that make artifacts more than one way (``artifact_options``)."""
    import profilers

    return {"exporter": exporter} if "exporter" in profilers.get_class(backend).artifact_options else {}


def _table_profiler(table, args):
    import hwnas.reference  # noqa: F401  (the table's reference may be a model of its space: registers its builder)
    from lut.validate import table_profiler

    return table_profiler(table, runs=getattr(args, "runs", None), artifacts={"exporter": getattr(args, "exporter", "dynamo")},
                          host=args.host, remote_python=args.remote_python, ssh_config=args.ssh_config)


def _cases(table, space, args, n_total: int):
    """Candidates sampled from the space; (predicted raw sums, cases)."""
    import random

    from lut.validate import ModelCase

    res_list = [args.resolution] if args.resolution else (table.metadata.get("resolutions") or list(space.resolutions))
    rng = random.Random(args.seed)
    archs = []
    for r in res_list:
        archs += [space.smallest(r), space.largest(r)]
    seen, cases = set(), []
    for i in range(max(args.candidates, n_total)):
        archs.append(space.sample(rng, resolution=res_list[i % len(res_list)]))
    for a in archs:
        name = a.to_string()
        if name in seen:
            continue
        seen.add(name)

        cases.append(ModelCase(name, [b.key for b in space.blocks(a)], functools.partial(_whole_model, space, a)))
    predicted = [table.model_ms(c.keys) for c in cases]  # models are spread over the predicted range
    return predicted, cases


def _whole_model(space, arch) -> tuple:
    """(module, example inputs) of ``arch`` in deploy form, ready to export."""
    import torch

    from hwnas.model import SODNet, for_export

    r = arch.resolution
    return for_export(SODNet(space, arch)), (torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0)),)


# ------------------------------------------------------------------------------ commands
def _cold_context_plan(space, res: list[int], retained: int | None = None, profiler=None,
                       private: int | None = None) -> tuple[dict, dict]:
    """(block key -> bytes of the cache flush before its context runs, block key -> builder of the
    whole model run before them instead): ``lut.measure.BlockMeter``'s ``model_bytes`` and
    ``model_between``. ``retained``: bytes that stay cached between a model's inferences here
    (default: measured, ``profilers.cache.retained_cache_bytes``); ``profiler``: the table's
    (``Profiler.context_after_model_run``); ``private``: a core's own cache below the last level
    (default per sysfs, ``profilers.cache.private_cache_bytes``).

    A block's context runs follow a flush of a typical model's bytes at its resolution where that
    model does not stay cached (``profilers.cache.flush_bytes``). Where it does, they follow an
    untimed run of the space's smallest model at that resolution, if that model costs at most
    ``hwnas.reference.MAX_MACS`` (inas-tiny's: 1-4 MMAC; inas-sod's at 320 px: hundreds), where the
    runtime asks for it (``Profiler.context_after_model_run``) or the typical model outgrows the
    core's private cache: inside such a model the other blocks evict a block's data from L2 between
    its runs, which its context runs back to back keep there. ONNX Runtime, inas-tiny at 64 px
    (1.2 MB) on an AMD host with a 512 KiB L2, two tables built back to back and each scored on the
    same two validations of 30 models (``bench/tables_rescored.py``, result
    ``tables_rescored_tiny-ort1-amd-s47-between``): context runs back to back predicted every model
    low (-13.0 / -13.5 %), after the smallest model's run +7.6 / +8.0 %; on Intel hosts with a 2 MiB
    L2 the same model stays in L2 and back-to-back context runs predicted within -2.3 % (session 35).
    Otherwise warm. Not where the model outgrows the last-level cache: there the other blocks' data
    evicts the block's from every level, which the flush reproduces, while ~150 untimed model runs per
    block cost 4x the build (OpenVINO, inas-sod at 320 px, this 2-core VM: 9.8 s per block against
    2.5 s with the flush); nor where it is costly: a large model in a large cache (inas-sod at 320 px
    on a 300 MiB L3) would add hours, and there a block's own kernels, not the state between nodes,
    dominate."""
    from hwnas.reference import MAX_MACS
    from lut.footprint import model_macs
    from profilers.cache import flush_bytes, private_cache_bytes, retained_cache_bytes

    retained = retained_cache_bytes() if retained is None else retained
    private = private_cache_bytes() if private is None else private
    asks = bool(getattr(profiler, "context_after_model_run", False))
    at_res = {r: space.all_blocks([r]) for r in res}
    bytes_at = {r: space.model_bytes(r) for r in res}
    model_bytes = {b.key: flush_bytes(bytes_at[r], retained) for r, bs in at_res.items() for b in bs}
    between_at = {r: functools.partial(_whole_model, space, space.smallest(r)) for r in res
                  if not flush_bytes(bytes_at[r], retained) and (asks or bytes_at[r] > private)
                  and model_macs(*_whole_model(space, space.smallest(r))) <= MAX_MACS}
    model_between = {b.key: between_at[r] for r, bs in at_res.items() if r in between_at for b in bs}
    return model_bytes, model_between


def _reference_for(space, res: list[int], threads: int = 1, retained: int | None = None) -> str:
    """The drift reference of a table at ``res``: the L3-sized one (``lut.reference``) where a typical
    model at every resolution does not stay cached (``retained``: bytes that do, default measured by
    ``profilers.cache.retained_cache_bytes``), as its context runs are flushed; a
    whole model of the space itself at the smallest resolution where that model is cheap to time in
    every window (``hwnas.reference.affordable``) and some name rebuilds the space
    (``hwnas.reference.rebuild_spec``): the small convolution stack tracked cache-resident
    sub-ms models only partly (their ratio to it moved 1.37x over 8 minutes on one host, to a model
    of the space 1.10x); the small convolution stack otherwise (a large model in a large cache), at
    one thread. A multi-threaded table of such models takes the L3-sized one there too: beside 8
    inas-sod models at 320 px on ONNX Runtime with 2 threads, their ratio to the small stack moved
    5.5 / 5.2 % between rounds, to the L3-sized reference 1.6 / 1.6 %, raw 3.0 / 3.2 % (two runs,
    rule fixed before: lower on both; ``bench/reference_ab.py --threads 2 --seed 81 / 82``); the
    models' log-speed followed the small stack's with slope 0.21 / 0.29, the L3-sized one's 0.93 / 0.86."""
    from hwnas.reference import affordable, space_model_reference
    from lut.reference import LARGE_REFERENCE_NAME, REFERENCE_NAME
    from profilers.cache import flush_bytes

    if all(flush_bytes(space.model_bytes(r), retained) for r in res):
        return LARGE_REFERENCE_NAME
    ref = space_model_reference(space, min(res))
    if ref is not None and affordable(ref):
        return ref
    return LARGE_REFERENCE_NAME if threads > 1 else REFERENCE_NAME


def _cache_probe(out: str) -> tuple[dict, str]:
    """How much stays cached between a model's inferences: as recorded by the build of ``out`` being
    resumed or extended (its rows were measured under that decision), else as the
    ``HWNAS_CACHE_BYTES`` override says, else measured now (``profilers.cache.probe_cache``)."""
    import os

    from lut.build import recorded_metadata
    from profilers.cache import CACHE_BYTES_ENV, probe_cache, retained_cache_bytes

    recorded = (recorded_metadata(out).get("latency_model") or {}).get("cache_probe")
    if recorded and recorded.get("retained_bytes") is not None:
        return recorded, f"as recorded by the build of {out}"
    if os.environ.get(CACHE_BYTES_ENV) is not None:
        return {"retained_bytes": retained_cache_bytes(), "source": CACHE_BYTES_ENV}, f"from {CACHE_BYTES_ENV}"
    return dict(probe_cache().to_dict(), source="measured"), "measured"


def _build(args) -> int:
    from hwnas.space import create
    from lut.build import build
    from profilers.cache import CACHE_BYTES_ENV, borderline, flush_bytes, private_cache_bytes

    space = create(args.space)
    res = _resolutions(args.resolutions, space)
    prof = make_profiler(args, BUILD_PROTOCOL, **_exporter_options(args.backend, args.exporter))
    blocks = space.all_blocks(res)
    if Path(args.out).is_dir():
        from lut.errors import LUTError

        raise LUTError(f"--out {args.out} is a directory; give the table's .parquet path")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, before any work
    print(f"{space.name}@{space.hash}: {len(blocks)} distinct blocks at {res} on {args.backend}"
          f"{' via ' + args.host if args.host else ''}, {args.threads} thread(s)", file=sys.stderr)
    probe, how = _cache_probe(args.out)
    retained = int(probe["retained_bytes"])
    private = int(probe.get("private_bytes") or private_cache_bytes())
    model_bytes, model_between = _cold_context_plan(space, res, retained, prof, private)
    sizes = {r: space.model_bytes(r) for r in res}
    flushed = [r for r in res if flush_bytes(sizes[r], retained)]
    after_run = [r for r in res if r not in flushed and any(b.key in model_between for b in space.all_blocks([r]))]
    warm = [r for r in res if r not in flushed and r not in after_run]
    how_runs = [f"at {flushed} px follow a flush of the model's bytes"] if flushed else []
    if after_run:
        why = ("the runtime asks for it" if getattr(prof, "context_after_model_run", False) else
               f"the model's {sizes[after_run[0]] / 2**20:.1f} MiB outgrow a core's {private / 2**10:.0f} KiB cache")
        how_runs.append(f"at {after_run} px follow an untimed run of the space's smallest model ({why})")
    if warm:
        how_runs.append(f"at {warm} px run warm")
    print(f"cache: {retained / 2**20:.0f} MiB stays cached between passes here ({how}); context runs "
          + "; ".join(how_runs), file=sys.stderr)
    climbs = probe.get("climbs_bytes") or []
    unsure = [r for r in res if borderline(sizes[r], climbs)]
    if unsure and probe.get("source") == "measured":
        mib = "/".join(f"{c / 2**20:.0f}" for c in climbs)
        print(f"cache: borderline at {unsure} px: the model's {sizes[unsure[0]] / 1e6:.0f} MB lies between "
              f"the probe's climbs ({mib} MiB), so another build here may decide otherwise; this table records the "
              f"median, and {CACHE_BYTES_ENV}=<bytes> builds again alike", file=sys.stderr)
    table = build(blocks, prof, args.out, {"name": space.name, "hash": space.hash}, resolutions=res, seed=args.seed,
                  progress=not args.no_progress, limit=args.limit, model_bytes=model_bytes, model_between=model_between,
                  reference=_reference_for(space, res, args.threads, retained), cache_probe=probe)
    if hasattr(prof, "close"):
        prof.close()
    complete = all(b.key in table for b in blocks)
    print(f"{'wrote' if complete else 'partial (rerun to continue):'} {args.out}: {len(table)} blocks")
    return 0


def _merge(args) -> int:
    from lut.build import merge

    t = merge(args.inputs, args.out)
    print(f"wrote {args.out}: {len(t)} blocks from {len(args.inputs)} inputs")
    return 0


def _show(args) -> int:
    from lut.table import LatencyTable

    t = LatencyTable.read(args.lut)
    print(t.summary())
    if args.rows:
        top = t.rows.sort_values("median_ms", ascending=False).head(args.rows)
        for r in top.itertuples():
            print(f"{r.median_ms:10.4f} ms  iqr/med {r.iqr_over_median:.3f}  {r.key}")
    return 0


def _predict(args) -> int:
    from collections import defaultdict

    from hwnas.arch import load_arch
    from lut.table import LatencyTable

    t = LatencyTable.read(args.lut)
    space = _space_for(t, args.space)
    arch = load_arch(args.arch)
    blocks = space.blocks(arch)
    keys = [b.key for b in blocks]
    out = t.prediction(keys)
    if args.breakdown:
        per = defaultdict(float)
        for b in blocks:
            per[b.kind] += t.context_ms(b.key) if t.has_context else t.median_ms(b.key)
        out["breakdown_ms"] = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    print(f"predicted_ms {out['predicted_ms']:.3f}")
    print(f"raw_sum_ms {out['raw_sum_ms']:.3f}   (plain sum of isolated blocks, the baseline)")
    if t.has_context:
        print(f"model_ms {out['model_ms']:.3f}   (call overhead {t.call_ms:.4f} ms + blocks in context)")
    else:
        print("note: this table has no context costs (built by an earlier hwnas): the prediction is the plain sum; "
              "rebuild it with `hwnas lut build` for context-aware predictions")
    if out["calibrated_ms"] is not None:
        print(f"calibrated_ms {out['calibrated_ms']:.3f}")
    for k, v in (out.get("breakdown_ms") or {}).items():
        print(f"  {k:8s} {v:9.3f} ms  {100 * v / out['model_ms']:5.1f} %")
    return 0


def _describe(c: dict) -> str:
    count = f" {c['c_ms_per_block']:+.4f} ms * n_blocks" if c["kind"] == "affine+count" else ""
    return f"measured ≈ {c['a']:.4f} * {c.get('fitted_on', 'raw_sum_ms')}{count} {c['b_ms']:+.3f} ms ({c['kind']})"


def _pick(raw, n_val: int, n_cal: int):
    from lut.validate import spread

    val = spread(raw, n_val) if n_val else []
    cal = spread(raw, n_cal, exclude=set(val)) if n_cal else []
    return val, cal


def _validate(args) -> int:
    from lut import plots
    from lut.errors import LUTError
    from lut.table import LatencyTable
    from lut.validate import validate

    if args.n < 2:
        raise LUTError(f"--n must be >= 2, got {args.n}")
    _check_calibration_models(args.calibrate, args.kind, "--calibrate", allow_zero=True)
    if args.save_calibration and not args.calibrate:
        raise LUTError("--save-calibration needs calibration models: --calibrate N")
    t = LatencyTable.read(args.lut)
    space = _space_for(t, args.space)
    prof = _table_profiler(t, args)
    raw, cases = _cases(t, space, args, args.n + args.calibrate)
    val, cal = _pick(raw, args.n, args.calibrate)
    out_dir = Path(args.out_dir or f"{args.lut}.validation")
    report = validate(t, [cases[i] for i in cal], [cases[i] for i in val], prof, journal=out_dir / "measured.jsonl",
                      progress=not args.no_progress, calibration_kind=args.kind, shard=args.shard, rounds=args.rounds)
    if report is None:
        print(f"shard {args.shard[0]}/{args.shard[1]}: measured; run without --shard to report")
        return 0
    report.update(lut=str(args.lut), space=t.space, backend=t.backend, device=prof.device_info(), protocol=t.protocol)
    from deploy.fileio import atomic_write_json

    atomic_write_json(out_dir / "report.json", report)
    preds = {"plain sum": [m["raw_sum_ms"] for m in report["models"]]}
    if t.has_context:
        preds["context model"] = [m["model_ms"] for m in report["models"]]
    if report.get("calibration"):
        preds["calibrated"] = [m["calibrated_ms"] for m in report["models"]]
    plots.scatter([m["target_ms"] for m in report["models"]], preds, out_dir / "scatter.png",
                  title=f"{t.space.get('name')} on {t.backend.get('name')}, {t.device.get('threads')} thread(s)",
                  xlabel="measured latency (ms, drift-compensated: ratio to the reference x the table's reference)"
                  if t.reference_ms else "measured latency (ms)")
    for label, what in (("raw", "plain sum vs measured"), ("model", "prediction vs measured (drift-compensated)"),
                        ("raw_vs_target", "plain sum vs drift-compensated"), ("calibrated", "calibrated prediction")):
        if label in report:
            a = report[label]
            print(f"{what:44s} n={a['n']} MAPE {a['mape_pct']:.2f} %  within5 {a['within_5_pct']:.0f} %  "
                  f"within10 {a['within_10_pct']:.0f} %  max {a['max_ape_pct']:.1f} %  "
                  f"bias {a['mean_signed_pct']:+.2f} %  tau {a['kendall_tau']:.3f}")
    if report.get("retest"):
        r = report["retest"]
        norm = (f"; drift-compensated median {r['normalized_median_pct']:.2f} %, p90 {r['normalized_p90_pct']:.2f} %"
                if "normalized_median_pct" in r else "")
        from lut.validate import retest_tau_text

        taus = retest_tau_text(r)
        print(f"test-retest (same models, two rounds): raw median {r['raw_median_pct']:.2f} %, p90 {r['raw_p90_pct']:.2f} %{norm}"
              + (f"; {taus}" if taus else ""))
    if report.get("reference_now_vs_build"):
        x = report["reference_now_vs_build"]
        print(f"reference now {report['reference_now_ms']:.4f} ms, {report['reference_ms']:.4f} ms during the build: this "
              f"machine runs {max(x, 1 / x):.2f}x {'slower' if x > 1 else 'faster'} than when the table was built "
              "(drift-compensated figures are stated at the build's speed)"
              + ("; a table for this machine as it runs now: rebuild it" if abs(x - 1) > 0.25 else ""))
    if report.get("calibration_refused"):
        print(f"calibration not fitted: {report['calibration_refused']}")
    if report.get("calibration"):
        c = report["calibration"]
        print(f"calibration: {_describe(c)} (fit on {c['n_models']} other models)")
        if args.save_calibration:
            t.with_calibration(c).write(args.lut)
            print(f"saved the calibration into {args.lut}")
    print(f"report: {out_dir / 'report.json'}  plot: {out_dir / 'scatter.png'}")
    return 0


def _check_calibration_models(n: int, kind: str, option: str, allow_zero: bool = False) -> None:
    """Refuse, before anything is measured, a model count the calibration kind cannot be fitted on."""
    from lut.calibrate import min_models
    from lut.errors import LUTError

    if allow_zero and n == 0:
        return
    if n < min_models(kind):
        raise LUTError(f"{option} {n}: calibration kind {kind} needs >= {min_models(kind)} models"
                       + (" (or 0 for none)" if allow_zero else ""))


def _calibrate(args) -> int:
    from lut import calibrate
    from lut.table import LatencyTable
    from lut.validate import measure_cases

    _check_calibration_models(args.n, args.kind, "--n")
    t = LatencyTable.read(args.lut)
    space = _space_for(t, args.space)
    prof = _table_profiler(t, args)
    raw, cases = _cases(t, space, args, args.n)
    _, cal = _pick(raw, 0, args.n)
    chosen = [cases[i] for i in cal]
    measured = measure_cases(chosen, prof, journal=Path(f"{args.lut}.calibration.jsonl"), progress=not args.no_progress,
                             rounds=args.rounds, reference=t.reference_name,
                             reference_artifacts=t.backend.get("artifacts"))
    from lut.validate import normalized_ms

    def target(name):
        norm = normalized_ms(measured[name], t.reference_ms)
        return norm if norm is not None else measured[name]["median_ms"]

    c = calibrate.fit([t.model_ms(x.keys) for x in chosen], [target(x.name) for x in chosen],
                      [len(x.keys) for x in chosen], kind=args.kind)
    c["fitted_on"] = "model_ms" if t.has_context else "raw_sum_ms"
    t.with_calibration(c).write(args.lut)
    print(f"calibration: {_describe(c)} on {c['n_models']} models (fit MAPE {c['fit_mape_pct']:.2f} %); "
          f"saved into {args.lut}")
    return 0
