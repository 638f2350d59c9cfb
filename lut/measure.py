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
                    ``context_ms`` is the isolated median less one call's overhead).

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
from lut.context import attribute, in_context
from lut.reference import REFERENCE_NAME, call_model, reference_model

NODE_PROFILE_RUNS = 20


def latency_model_kind(profiler, flushed: bool = False, between: bool = False) -> dict:
    """How a table built with ``profiler`` measures context costs (``flushed``: context runs after a
    cache flush of the model's bytes; ``between``: after an untimed run of a whole model, where the
    profiler generates code per node); tables of different kinds never mix."""
    interleaved = bool(getattr(profiler, "can_interleave", False))
    profiled = interleaved and bool(getattr(profiler, "has_node_profile", False))
    runs_between = between and profiled and bool(getattr(profiler, "kernel_code_per_node", False))
    kind = {"version": 3, "reference": REFERENCE_NAME if interleaved else None,
            "context": "node-profile" if profiled else "call-overhead",
            "cache": ("model-run" if runs_between else "model-bytes-flush" if flushed and interleaved else "warm")}
    # a backend that changed how it reads its profiler says so (absent: as when v3 began)
    revision = getattr(getattr(profiler, "inner", profiler), "node_profile_revision", None)
    if profiled and revision:
        kind["node_profile"] = revision
    return kind


# blocks one export worker handles before it is replaced (see BlockMeter.export_ahead)
EXPORTS_PER_WORKER = 50


def _export_block(profiler, block: BlockSpec, folder: Path, with_context: bool) -> None:
    """Export a block (and its context graph) into ``folder``, atomically: a temporary folder renamed
    into place, so a killed export leaves nothing that looks complete."""
    from deploy.fileio import atomic_path, first_line
    from lut.errors import LUTError

    with atomic_path(folder, durable=False) as tmp:  # regenerable: a power loss costs a re-export
        tmp.mkdir()
        suffix = profiler.artifact_suffix
        try:
            profiler.export(block.build(), block.example_inputs(), tmp / f"block{suffix}")
            if with_context:
                module, inputs = in_context(block)
                profiler.export(module, inputs, tmp / f"context{suffix}")
                (tmp / "outputs.txt").write_text(str(module.n_outputs))
        except OSError:  # disk full, permission: the CLI names the path and the cause
            raise
        except Exception as e:  # exporters raise many types; name the block
            raise LUTError(f"exporting block {block.key!r} failed: {first_line(e, with_type=True)[:300]}") from None


@dataclass
class BlockArtifacts:
    isolated: Path
    context: Path | None  # None: the runtime cannot profile nodes, the context graph would not be used
    n_outputs: int = 1


class BlockMeter:
    """Measures blocks for one table build: holds the reference, the call overhead and a work folder."""

    def __init__(self, profiler, workdir: Path, seed: int = 0, model_bytes: Mapping[str, int] | None = None,
                 model_between: Mapping[str, Callable[[], tuple]] | None = None):
        """``model_bytes``: block key -> bytes a model holding that block touches per inference; its
        context runs then follow a cache flush of that size (``profilers.cache``). ``model_between``:
        block key -> a builder of ``(module, example inputs)`` of a whole model at the block's
        resolution; where the profiler generates code per node (``Profiler.kernel_code_per_node``)
        the block's context runs follow an untimed run of that model instead of the flush: what
        a model's other blocks leave in the data and instruction caches and branch predictors.
        OpenVINO, inas-tiny at 64 px, two archs: their blocks' kernels in context summed to 192 /
        207 us warm and 207 / 242 us after each run of another architecture, against 210 / 253 us
        inside the whole models (``PERF_COUNT``, one process)."""
        self.profiler = profiler
        self.workdir = Path(workdir)
        self.seed = seed
        self.model_bytes = dict(model_bytes or {})
        self.interleaved = bool(getattr(profiler, "can_interleave", False))
        kind = latency_model_kind(profiler, between=bool(model_between))
        self.model_between = dict(model_between or {}) if kind["cache"] == "model-run" else {}
        self._between_artifacts: dict[int, tuple] = {}  # one export per builder (per resolution)
        self._n = 0
        self.ref_path = self._export(*reference_model(), "reference")
        self.ref_shapes = [tuple(t.shape) for t in reference_model()[1]]
        call_path = self._export(*call_model(), "call")
        call_shapes = [tuple(t.shape) for t in call_model()[1]]
        self.node_profiles = False
        if self.interleaved:
            got = profiler.measure_together({"call": (call_path, call_shapes), "ref": (self.ref_path, self.ref_shapes)},
                                            seed=seed)
            self.call_ms, self.call_ref_ms = got["call"].median_ms, got["ref"].median_ms
            self.node_profiles = latency_model_kind(profiler)["context"] == "node-profile"
        else:
            self.call_ms, self.call_ref_ms = profiler.measure_artifact(call_path, call_shapes).median_ms, math.nan

    def describe(self) -> dict:
        """What the table's metadata records about how its context costs were measured."""
        return dict(latency_model_kind(self.profiler, bool(self.model_bytes), bool(self.model_between)), call_ms=self.call_ms,
                    call_ref_ms=None if math.isnan(self.call_ref_ms) else self.call_ref_ms)

    def adopt(self, described: dict) -> None:
        """Use the call overhead a build measured when it started (resuming or extending it)."""
        if described.get("call_ms") is not None:
            self.call_ms = float(described["call_ms"])
            ref = described.get("call_ref_ms")
            self.call_ref_ms = float(ref) if ref is not None else math.nan

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
        import os
        import pickle

        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = {}
        for b in blocks:
            folder = cache_dir / hashlib.sha1(b.key.encode()).hexdigest()[:20]
            jobs[b.key] = (b, folder)
        missing = [(b, f) for b, f in jobs.values() if not f.is_dir()]
        workers = workers or min(os.cpu_count() or 1, 4)
        try:
            pickle.dumps((self.profiler, [b for b, _ in missing[:3]]))
            can_pool = workers > 1 and len(missing) >= 8
        except (pickle.PicklingError, TypeError, AttributeError):
            can_pool = False
        from tqdm import tqdm

        bar = tqdm(total=len(missing), desc="exporting blocks", unit="block", disable=not progress or not missing)
        if can_pool:
            import concurrent.futures as cf
            import multiprocessing

            # fresh workers every EXPORTS_PER_WORKER blocks each: ExecuTorch's export keeps ~14 MB per block alive in
            # its process (a worker's RSS reached 6.3 GB after ~450 inas-sod blocks at 320 px). A new
            # pool per batch, not max_tasks_per_child: that hung here once both workers retired.
            batch = EXPORTS_PER_WORKER * workers
            for start in range(0, len(missing), batch):
                with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    futures = [pool.submit(_export_block, self.profiler, b, f, self.node_profiles)
                               for b, f in missing[start:start + batch]]
                    for fut in cf.as_completed(futures):
                        fut.result()  # a failed export raises here, naming the block
                        bar.update()
        else:
            for b, f in missing:
                _export_block(self.profiler, b, f, self.node_profiles)
                bar.update()
        bar.close()
        suffix = self.profiler.artifact_suffix
        def n_outputs(f: Path) -> int:
            p = f / "outputs.txt"
            return int(p.read_text()) if p.is_file() else 1

        return {k: BlockArtifacts(f / f"block{suffix}", (f / f"context{suffix}") if self.node_profiles else None,
                                  n_outputs(f)) for k, (b, f) in jobs.items()}

    def measure(self, block: BlockSpec, arts: BlockArtifacts, window: int = 0):
        """(isolated Measurement, extra row fields) of one window."""
        shapes = list(block.input_shapes)
        if not self.interleaved:
            m = self.profiler.measure_artifact(arts.isolated, shapes)
            return m, {"ref_ms": math.nan, "context_ms": max(m.median_ms - self.call_ms, 0.0), "context_share": math.nan}
        arts_by_name = {"block": (arts.isolated, shapes), "ref": (self.ref_path, self.ref_shapes)}
        between = self._between(block.key) if arts.context is not None else None
        flush = 0 if between else int(self.model_bytes.get(block.key, 0))
        if arts.context is not None:
            arts_by_name["context"] = (arts.context, shapes)
        # the isolated block stays warm (the plain-sum baseline); its in-model cost is measured cold
        # as far as a model's other blocks would make it
        got = self.profiler.measure_together(arts_by_name, seed=zlib.crc32(f"{self.seed}|{block.key}|{window}".encode()),
                                             flush_bytes={"context": flush} if flush else None,
                                             **({"between": {"context": between}} if between else {}))
        ref_ms = got["ref"].median_ms
        call_here_ms = self.call_ms * ref_ms / self.call_ref_ms  # the call overhead at this window's speed
        if arts.context is None:
            share = math.nan
            context_ms = max(got["block"].median_ms - call_here_ms, 0.0)
        else:
            # ~0.05 s of profiled runs (20-200): sub-0.1 ms blocks need many for whole-microsecond timestamps
            runs_n = int(min(200, max(NODE_PROFILE_RUNS, 0.05 / max(got["context"].median_ms * 1e-3, 1e-6))))
            prof = self.profiler.node_profile(arts.context, shapes, runs=runs_n, flush_bytes=flush,
                                              **({"between": between} if between else {}))
            share = attribute(prof, not block.model_input, not block.model_output, n_inputs=len(shapes),
                              n_outputs=arts.n_outputs).share_with_dispatch(got["context"].median_ms * 1e3,
                                                                            call_here_ms * 1e3)
            context_ms = max(got["context"].median_ms - call_here_ms, 0.0) * share
        return got["block"], {"ref_ms": ref_ms, "context_ms": context_ms, "context_share": share}
