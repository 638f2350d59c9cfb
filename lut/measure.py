"""Measure one block the way a latency table needs it: alone, in context, against the reference.

One window per block: the isolated block (the plain-sum baseline), the block in context
(``lut.context``) and the reference model (``lut.reference``) run interleaved, run for run in
random order, so the three medians come from the same moments of the machine. Then the runtime's
own profiler splits the context graph's kernel time between the block and its neighbours. A row
gets, beside the isolated statistics (``median_ms`` ...):

* ``ref_ms``        the reference's median in the same window (the drift scale);
* ``context_ms``    the block's in-model cost in that window: (context wall median − one call's
                    overhead) x the block's share of the context run (its kernels and its nodes'
                    dispatch, ``lut.context.Attribution.share_with_dispatch``), the context runs
                    following a cache flush where the model's bytes outgrow the last-level cache;
* ``context_share`` that share (``NaN`` where the runtime has no per-node profiler: then
                    ``context_ms`` is the isolated median less one call's overhead);
* ``context_io_ms`` what the context run spent copying its inputs in and its outputs out
                    (:class:`IOCost`), taken out of the run before it is shared: a model copies
                    only its own input and outputs, so a block keeps only the I/O of its
                    boundaries that face the model's (``BlockSpec.model_input`` / ``model_output``).

Backends that cannot time artifacts interleaved (adb, trtexec) are measured one artifact at a
time, without the reference (``ref_ms`` is ``NaN``: no drift compensation); over ssh the remote
runner does the interleaving and the profiling, so a remote table is built as a local one.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lut.blocks import BlockSpec
from lut.context import NEIGHBOURS, attribute, in_context, in_context_twice, keeps_shape
from lut.reference import REFERENCE_NAME, call_model, io_model, reference_model

NODE_PROFILE_RUNS = 20
# bytes of each of input and output at which a call's I/O cost is measured (IOCost); the context
# graphs of inas-sod at 320 px pass up to ~10 MB in and out
IO_GRID_BYTES = (16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20)


@dataclass(frozen=True)
class IOCost:
    """What a call spends on its tensors beyond one call's overhead and its operators, as a function
    of the bytes it passes in and out (together), as ratios to the reference of the window each
    point was measured in: piecewise linear through the measured points, 0 at 0 bytes, the last
    segment's slope beyond them.

    Why: on ExecuTorch XNNPACK at 320 px a block's context run spent 0.5-1 ms of a few ms outside
    its operators copying MB-sized feature maps in and out (``lut.reference``, I/O). Spread over the
    run's nodes as dispatch (``Attribution.share_with_dispatch``), that charged every block for
    copies no whole model makes: ~10 ms per model, 2.3 of the +8.7 % by which the same block windows
    predicted 4 archs high (``bench/context_io.py``; the rest is not I/O)."""

    total_bytes: tuple[int, ...]  # input + output bytes of each point
    ratio: tuple[float, ...]  # I/O ms / reference ms of the same window, non-decreasing

    def ms(self, nbytes: float, ref_ms: float) -> float:
        import numpy as np

        x = (0, *self.total_bytes)
        y = (0.0, *self.ratio)
        if nbytes <= x[-1]:
            r = float(np.interp(nbytes, x, y))
        else:
            slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
            r = y[-1] + slope * (nbytes - x[-1])
        return max(r, 0.0) * ref_ms

    def to_dict(self) -> dict:
        return {"total_bytes": list(self.total_bytes), "ratio": list(self.ratio)}

    @classmethod
    def from_dict(cls, d: dict) -> "IOCost":
        return cls(tuple(int(b) for b in d["total_bytes"]), tuple(float(r) for r in d["ratio"]))


def _nbytes(shapes) -> int:
    return int(sum(4 * math.prod(int(x) for x in s) for s in shapes))  # fp32


def latency_model_kind(profiler, flushed: bool = False, between: bool = False, reference: str = REFERENCE_NAME) -> dict:
    """How a table built with ``profiler`` measures context costs (``flushed``: context runs after a
    cache flush of the model's bytes; ``between``: after an untimed run of a whole model, where the
    build's plan asks for one and the profiler profiles nodes; ``reference``: the drift reference,
    ``lut.reference``); tables of different kinds never mix."""
    interleaved = bool(getattr(profiler, "can_interleave", False))
    profiled = interleaved and bool(getattr(profiler, "has_node_profile", False))
    runs_between = between and profiled  # where is decided by the build's plan (hwnas.cli.lut._cold_context_plan)
    kind = {"version": 3, "reference": reference if interleaved else None,
            "context": "node-profile" if profiled else "call-overhead",
            "cache": ("model-run" if runs_between else "model-bytes-flush" if flushed and interleaved else "warm")}
    if not getattr(getattr(profiler, "inner", profiler), "call_in_samples", True):
        kind["call"] = "none"  # the backend's samples hold no per-call overhead: nothing is subtracted
    if profiled:
        kind["io"] = "sized"  # a context run's I/O is measured by size and charged only where a model pays it (IOCost)
        kind["neighbours"] = NEIGHBOURS  # how a context graph produces a block's inputs (lut.context)
    # a backend that changed how it reads its profiler says so (absent: as when v3 began)
    revision = getattr(getattr(profiler, "inner", profiler), "node_profile_revision", None)
    if profiled and revision:
        kind["node_profile"] = revision
    if profiled and context_split(profiler) == "marginal":
        kind["split"] = "marginal"  # a shape-keeping block: one more copy in its context graph (lut.context)
    return kind


def context_split(profiler) -> str:
    """How the runtime's context runs are split between a block and its neighbours
    (``Profiler.context_split``): ``"profile"``, by its per-node profile; ``"marginal"``, for a block
    that keeps its input's shape the unprofiled context graph with one more copy of it less without
    (``lut.context.in_context_twice``), the profile for the others."""
    return getattr(getattr(profiler, "inner", profiler), "context_split", "profile")


def _export_block(profiler, block: BlockSpec, folder: Path, with_context: bool, marginal: bool = False) -> None:
    """Export a block (and its context graph; with ``marginal``, for a block that keeps its input's
    shape, the context graph with one more copy too) into ``folder``, atomically: a temporary folder
    renamed into place, so a killed export leaves nothing that looks complete."""
    from deploy.fileio import atomic_path, first_line
    from lut.errors import LUTError

    with atomic_path(folder, durable=False) as tmp:  # regenerable: a power loss costs a re-export
        tmp.mkdir()
        suffix = profiler.artifact_suffix
        try:
            profiler.export(block.build(), block.example_inputs(), tmp / f"block{suffix}")
            if with_context:
                import torch

                module, inputs = in_context(block)
                profiler.export(module, inputs, tmp / f"context{suffix}")
                with torch.no_grad():
                    y = module(*inputs)
                ys = tuple(y) if isinstance(y, (tuple, list)) else (y,)
                # line 1: the number of outputs; line 2: their fp32 bytes (the context run's I/O, IOCost)
                (tmp / "outputs.txt").write_text(f"{module.n_outputs}\n{_nbytes([tuple(t.shape) for t in ys])}\n")
                if marginal and keeps_shape(block):
                    profiler.export(*in_context_twice(block), tmp / f"twice{suffix}")
        except OSError:  # disk full, permission: the CLI names the path and the cause
            raise
        except Exception as e:  # exporters raise many types; name the block
            raise LUTError(f"exporting block {block.key!r} failed: {first_line(e, with_type=True)[:300]}") from None


@dataclass
class BlockArtifacts:
    isolated: Path
    context: Path | None  # None: the runtime cannot profile nodes, the context graph would not be used
    n_outputs: int = 1
    output_bytes: int = 0  # of the context graph's outputs (0: unknown, exported by an earlier hwnas)
    twice: Path | None = None  # the context graph with one more copy of the block (context_split "marginal")


class BlockMeter:
    """Measures blocks for one table build: holds the reference, the call overhead and a work folder."""

    def __init__(self, profiler, workdir: Path, seed: int = 0, model_bytes: Mapping[str, int] | None = None,
                 model_between: Mapping[str, Callable[[], tuple]] | None = None, reference: str = REFERENCE_NAME,
                 cache_probe: dict | None = None):
        """``model_bytes``: block key -> bytes of the cache flush before that block's context runs
        (``profilers.cache.flush_bytes`` of what a model holding it touches per inference; 0: none). ``model_between``:
        block key -> a builder of ``(module, example inputs)`` of a whole model at the block's
        resolution (where the build's plan asks for it: ``hwnas.cli.lut._cold_context_plan``); on a
        runtime that profiles nodes the block's context runs follow an untimed run of that model: what
        a model's other blocks leave in the data and instruction caches and branch predictors.
        OpenVINO, inas-tiny at 64 px, two archs: their blocks' kernels in context summed to 192 /
        207 us warm and 207 / 242 us after each run of another architecture, against 210 / 253 us
        inside the whole models (``PERF_COUNT``, one process). ``reference``: the drift reference's
        name (``lut.reference``). ``cache_probe``: what decided the flushes, recorded by :meth:`describe`."""
        self.profiler = profiler
        self.cache_probe = dict(cache_probe) if cache_probe else None
        self.reference = reference
        self.workdir = Path(workdir)
        self.seed = seed
        self.model_bytes = dict(model_bytes or {})
        self.interleaved = bool(getattr(profiler, "can_interleave", False))
        kind = latency_model_kind(profiler, between=bool(model_between))
        self.model_between = dict(model_between or {}) if kind["cache"] == "model-run" else {}
        self._between_artifacts: dict[int, tuple] = {}  # one export per builder (per resolution)
        self._io: dict[int, IOCost] = {}  # flush bytes -> the I/O cost under that flush, measured when first needed
        self.last: dict = {}  # the last block's context-run terms, at its window's speed (bench/context_io.py)
        self._n = 0
        ref_module, ref_inputs = reference_model(reference)
        self.ref_path = self._export(ref_module, ref_inputs, "reference")
        self.ref_shapes = [tuple(t.shape) for t in ref_inputs]
        self.node_profiles = self.interleaved and kind["context"] == "node-profile"
        self.marginal = self.node_profiles and kind.get("split") == "marginal"
        if kind.get("call") == "none":
            self.call_ms, self.call_ref_ms = 0.0, math.nan
            return
        call_path = self._export(*call_model(), "call")
        call_shapes = [tuple(t.shape) for t in call_model()[1]]
        if self.interleaved:
            got = profiler.measure_together({"call": (call_path, call_shapes), "ref": (self.ref_path, self.ref_shapes)},
                                            seed=seed, reference="ref")
            self.call_ms, self.call_ref_ms = got["call"].median_ms, got["ref"].median_ms
        else:
            self.call_ms, self.call_ref_ms = profiler.measure_artifact(call_path, call_shapes).median_ms, math.nan

    def describe(self) -> dict:
        """What the table's metadata records about how its context costs were measured."""
        d = dict(latency_model_kind(self.profiler, bool(self.model_bytes), bool(self.model_between), self.reference),
                 call_ms=self.call_ms,
                 call_ref_ms=None if math.isnan(self.call_ref_ms) else self.call_ref_ms)
        if self.cache_probe:
            d["cache_probe"] = self.cache_probe
        if self._io:
            d["io_cost"] = {str(flush): c.to_dict() for flush, c in sorted(self._io.items())}
        return d

    def adopt(self, described: dict) -> None:
        """Use the call overhead a build measured when it started (resuming or extending it)."""
        if described.get("call_ms") is not None:
            self.call_ms = float(described["call_ms"])
            ref = described.get("call_ref_ms")
            self.call_ref_ms = float(ref) if ref is not None else math.nan
        if described.get("cache_probe") and not self.cache_probe:
            self.cache_probe = dict(described["cache_probe"])
        for flush, c in (described.get("io_cost") or {}).items():
            self._io[int(flush)] = IOCost.from_dict(c)

    def _flush(self, block: BlockSpec) -> tuple[int, tuple | None]:
        """(cache flush bytes, whole model run instead) before ``block``'s context runs."""
        between = self._between(block.key) if self.node_profiles else None
        return (0 if between else int(self.model_bytes.get(block.key, 0))), between

    def measure_io(self, blocks: Sequence[BlockSpec]) -> None:
        """Measure the I/O cost under every flush that ``blocks``' context runs will follow (once
        per flush size; a resumed build adopts what its first run measured)."""
        if self.node_profiles:
            for flush in sorted({self._flush(b)[0] for b in blocks}):
                self.io_cost(flush)

    def io_cost(self, flush_bytes: int) -> IOCost:
        """The I/O cost of a call whose runs follow a cache flush of ``flush_bytes`` (the same flush as
        the context runs it is subtracted from: a copied input is read from where the flush left
        it). Measured once per flush size, at the first block that needs it: each grid point's model
        (``lut.reference.io_model``) timed against the reference, less one call's overhead and its
        operators' profiled time."""
        if flush_bytes not in self._io:
            total, ratio = [], []
            for nbytes in IO_GRID_BYTES:
                module, inputs = io_model(nbytes)
                shapes = [tuple(t.shape) for t in inputs]
                path = self._export(module, inputs, "io")
                got = self.profiler.measure_together({"io": (path, shapes), "ref": (self.ref_path, self.ref_shapes)},
                                                     seed=zlib.crc32(f"{self.seed}|io|{nbytes}".encode()),
                                                     flush_bytes={"io": flush_bytes} if flush_bytes else None,
                                                     reference="ref")
                prof = self.profiler.node_profile(path, shapes, runs=NODE_PROFILE_RUNS, flush_bytes=flush_bytes)
                kernels_ms = sum(n.kernel_us for n in prof.nodes) / 1e3 if prof is not None else 0.0
                ref_ms = got["ref"].median_ms
                io_ms = max(got["io"].median_ms - self.call_ms * ref_ms / self.call_ref_ms - kernels_ms, 0.0)
                total.append(2 * _nbytes(shapes))
                ratio.append(max(io_ms / ref_ms, ratio[-1] if ratio else 0.0))  # more bytes never cost less
            self._io[flush_bytes] = IOCost(tuple(total), tuple(ratio))
        return self._io[flush_bytes]

    def _between(self, key: str) -> tuple | None:
        """``(path, input shapes)`` of the whole model run before ``key``'s context runs, or None."""
        builder = self.model_between.get(key)
        if builder is None:
            return None
        if id(builder) not in self._between_artifacts:
            module, inputs = builder()
            self._between_artifacts[id(builder)] = (self._export(module, inputs, "between"),
                                                    [tuple(t.shape) for t in inputs])
        return self._between_artifacts[id(builder)]

    def _export(self, module, inputs, stem: str) -> Path:
        self._n += 1
        return Path(self.profiler.export(module, tuple(inputs), self.workdir / f"{stem}{self._n}{self.profiler.artifact_suffix}"))

    def export_ahead(self, blocks: Sequence[BlockSpec], cache_dir: Path, progress: bool = True,
                     workers: int | None = None) -> dict[str, BlockArtifacts]:
        """Export every block before any timing, in worker processes, into ``cache_dir`` (one folder
        per block key, renamed into place when complete, so a killed build keeps what it exported
        and a resumed one reuses it). ExecuTorch and LiteRT take seconds per block: exported one
        by one between timings they dominated a build; in a pool they run on every core while
        nothing is timed. Falls back to this process where the profiler or a block cannot be sent
        to a worker (an ssh connection, a block built by a lambda)."""
        import hashlib

        from tqdm import tqdm

        from lut.export_pool import can_pool, default_workers, run_pooled

        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = {}
        for b in blocks:
            # the context scheme is in the name: a resumed build never reuses another scheme's context graph
            scheme = f"{b.key}|{NEIGHBOURS}" + ("|marginal" if self.marginal else "")
            folder = cache_dir / hashlib.sha1(scheme.encode()).hexdigest()[:20]
            jobs[b.key] = (b, folder)
        missing = [(self.profiler, b, f, self.node_profiles, self.marginal) for b, f in jobs.values() if not f.is_dir()]
        workers = workers or default_workers()
        bar = tqdm(total=len(missing), desc="exporting blocks", unit="block", disable=not progress or not missing)
        if can_pool(_export_block, missing, workers, min_jobs=8):
            run_pooled(_export_block, missing, workers, lambda i, _: bar.update())
        else:
            for job in missing:
                _export_block(*job)
                bar.update()
        bar.close()
        suffix = self.profiler.artifact_suffix
        def outputs(f: Path) -> tuple[int, int]:
            p = f / "outputs.txt"
            lines = p.read_text().split() if p.is_file() else []
            return (int(lines[0]) if lines else 1), (int(lines[1]) if len(lines) > 1 else 0)

        def twice(f: Path) -> Path | None:
            p = f / f"twice{suffix}"
            return p if self.marginal and p.is_file() else None

        return {k: BlockArtifacts(f / f"block{suffix}", (f / f"context{suffix}") if self.node_profiles else None,
                                  *outputs(f), twice=twice(f)) for k, (b, f) in jobs.items()}

    def measure(self, block: BlockSpec, arts: BlockArtifacts, window: int = 0):
        """(isolated Measurement, extra row fields) of one window."""
        shapes = list(block.input_shapes)
        if not self.interleaved:
            m = self.profiler.measure_artifact(arts.isolated, shapes)
            return m, {"ref_ms": math.nan, "context_ms": max(m.median_ms - self.call_ms, 0.0), "context_share": math.nan,
                       "context_io_ms": math.nan}
        arts_by_name = {"block": (arts.isolated, shapes), "ref": (self.ref_path, self.ref_shapes)}
        flush, between = self._flush(block) if arts.context is not None else (0, None)
        if arts.context is not None:
            arts_by_name["context"] = (arts.context, shapes)
        cold = ["context"] + (["twice"] if arts.twice is not None else [])
        if arts.twice is not None:
            arts_by_name["twice"] = (arts.twice, shapes)
        # the isolated block stays warm (the plain-sum baseline); its in-model cost is measured cold
        # as far as a model's other blocks would make it
        got = self.profiler.measure_together(arts_by_name, seed=zlib.crc32(f"{self.seed}|{block.key}|{window}".encode()),
                                             flush_bytes={n: flush for n in cold} if flush else None, reference="ref",
                                             **({"between": {n: between for n in cold}} if between else {}))
        ref_ms = got["ref"].median_ms
        call_here_ms = self.call_ms * ref_ms / self.call_ref_ms if self.call_ms else 0.0  # at this window's speed
        if arts.context is None:
            share = io_ms = math.nan
            context_ms = max(got["block"].median_ms - call_here_ms, 0.0)
        elif arts.twice is not None:
            # the graph with one more copy less the graph, same neighbours, same state: no profiler, no
            # share (ORT's profiler adds microseconds to every node's kernel time on the AMD hosts, and a
            # share by it charged the coarse levels' fusions 0.0953 ms where inside whole models and
            # in these graphs one more copy cost 0.0587 / 0.0600 ms: bench/block_insertion.py); the call
            # and the graph's I/O cancel, and such a block faces neither the model's input nor output
            share = io_ms = math.nan
            context_ms = max(got["twice"].median_ms - got["context"].median_ms, 0.0)
            self.last = {"run_ms": got["context"].median_ms, "twice_ms": got["twice"].median_ms, "call_ms": call_here_ms}
        else:
            # ~0.05 s of profiled runs (20-200): sub-0.1 ms blocks need many for whole-microsecond timestamps
            runs_n = int(min(200, max(NODE_PROFILE_RUNS, 0.05 / max(got["context"].median_ms * 1e-3, 1e-6))))
            prof = self.profiler.node_profile(arts.context, shapes, runs=runs_n, flush_bytes=flush,
                                              **({"between": between} if between else {}))
            # the run's I/O: what its inputs and outputs cost to pass, at this window's speed; the block
            # keeps the part a model pays too (its own input, its outputs)
            io = self.io_cost(flush)
            in_bytes, out_bytes = _nbytes(shapes), arts.output_bytes
            io_ms = io.ms(in_bytes + out_bytes, ref_ms)
            facing_ms = io.ms(in_bytes * block.model_input + out_bytes * block.model_output, ref_ms)
            split = attribute(prof, not block.model_input, not block.model_output, n_inputs=len(shapes),
                              n_outputs=arts.n_outputs)
            overhead_ms = call_here_ms + io_ms
            share = split.share_with_dispatch(got["context"].median_ms * 1e3, overhead_ms * 1e3)
            context_ms = max(got["context"].median_ms - overhead_ms, 0.0) * share + facing_ms
            self.last = {"run_ms": got["context"].median_ms, "call_ms": call_here_ms, "io_ms": io_ms,
                         "facing_io_ms": facing_ms, "attribution": split}
        return got["block"], {"ref_ms": ref_ms, "context_ms": context_ms, "context_share": share, "context_io_ms": io_ms}
