"""A device's latency lookup table: one row per distinct block key, stored as Parquet.

Columns: ``key``, ``kind``, ``input_shapes``, the statistics of ``profilers.Measurement``
(``median_ms`` primary), the raw ``samples_ms`` and ``measured_at``. The table's identity lives in
the Parquet schema metadata under ``hwnas.lut`` as JSON (readable with plain pyarrow, no hwnas):
``space`` (name, hash), ``device`` (fingerprint), ``backend`` (name, version, settings),
``protocol`` (timing protocol) and, once fitted, ``calibration``. A table refuses to be used for,
or mixed with, another space, device, backend or protocol, and says which field differs.

Prediction (thesis §3.2.3: latency of a model = sum of its blocks' latencies) is the plain sum of
block medians; ``calibrated=True`` applies a linear correction fitted on measured whole models
(``lut.calibrate``), which absorbs fixed per-inference overhead and cross-block effects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from deploy.fileio import atomic_path
from lut.errors import LUTError

META_KEY = b"hwnas.lut"
FORMAT_VERSION = 1
STAT_COLUMNS = ("median_ms", "mean_ms", "std_ms", "min_ms", "p90_ms", "p99_ms", "iqr_over_median")
# ref_ms, context_ms, context_share, context_io_ms: see lut.measure (NaN in tables built before hwnas measured them)
CONTEXT_COLUMNS = ("ref_ms", "context_ms", "context_share", "context_io_ms")
COLUMNS = ("key", "kind", "input_shapes", *STAT_COLUMNS, "warmup_runs", "runs", "attempts", "unstable",
           "samples_ms", "measured_at", *CONTEXT_COLUMNS)


# windows whose reference ran within this factor of its 5th percentile form the fast state
FAST_STATE_BAND = 1.2


def reference_speed_ms(ref_ms) -> float:
    """The reference's time a table states its costs at: the median of the windows in its fast state
    (within :data:`FAST_STATE_BAND` of the 5th percentile of the build's window medians). On a
    steady machine every window is in that band and this is the plain median.

    Why not the plain median: on some hosts the machine's speed switches between states for
    seconds at a time, and the blocks follow the reference (per window their ratios hold), but the
    share of windows in each state differs from build to build. The inas-tiny table built twice
    (64 px, ONNX Runtime 1 thread, ``bench/lut_drift.py --seed 30``): the reference's windows fell
    in two states, ~0.19 and ~0.32 ms, 126 and 139 of 249 in the fast one, so the median sat at
    the gap in one build (0.218 ms) and in the fast state in the other (0.191 ms), and every
    prediction moved by −11 % (median), while the fast state's median moved by −2.4 %."""
    import numpy as np

    ref = np.asarray(ref_ms, dtype=float)
    fast = ref[ref <= FAST_STATE_BAND * np.percentile(ref, 5)]
    return float(np.median(fast))


def _device_mismatch(a: dict, b: dict) -> str | None:
    from profilers.fingerprint import mismatch

    return mismatch(a, b)


def _settings(meta_backend: dict) -> dict:
    # where it ran (ssh host) does not change the number; what the runtime was told does
    return {k: v for k, v in (meta_backend.get("settings") or {}).items() if k not in ("via", "host")}


def _protocol(d: dict | None) -> dict:
    # fields added later (rounds) compare as their defaults, so older tables stay usable
    from profilers.stats import Protocol

    if not d:
        return {}
    try:
        return Protocol.from_dict(d).to_dict()
    except Exception:  # an unreadable protocol compares as written
        return dict(d)


def _latency_model_kind(meta: dict) -> dict | None:
    lm = meta.get("latency_model")
    return {k: lm.get(k) for k in ("version", "reference", "context", "cache", "node_profile", "io", "call", "neighbours",
                                  "split")} if lm else None


def compatibility_problem(a: dict, b: dict) -> str | None:
    """Why two tables' metadata cannot be mixed (first differing field), or None."""
    sa, sb = a.get("space", {}), b.get("space", {})
    if sa.get("hash") != sb.get("hash"):
        return f"space differs: {sa.get('name')}@{sa.get('hash')} vs {sb.get('name')}@{sb.get('hash')}"
    ba, bb = a.get("backend", {}), b.get("backend", {})
    if ba.get("name") != bb.get("name"):
        return f"backend differs: {ba.get('name')} vs {bb.get('name')}"
    dev = _device_mismatch(a.get("device", {}), b.get("device", {}))
    if dev:
        return f"device differs: {dev}"
    sa, sb = _settings(ba), _settings(bb)
    if sa != sb:
        diff = "; ".join(f"{k}: {sa.get(k)!r} vs {sb.get(k)!r}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k))
        return f"backend settings differ: {diff}"
    la, lb = _latency_model_kind(a), _latency_model_kind(b)
    if la != lb:
        return (f"latency model differs: {la or 'none (a table built before hwnas measured context costs)'} vs "
                f"{lb or 'none (a table built before hwnas measured context costs)'}")
    pa, pb = _protocol(a.get("protocol")), _protocol(b.get("protocol"))
    if pa != pb:
        diff = "; ".join(f"{k}: {pa.get(k)!r} vs {pb.get(k)!r}" for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k))
        return f"timing protocol differs: {diff}"
    return None


def parse_metadata(raw: bytes, path: Path) -> dict:
    """A table's ``hwnas.lut`` metadata, checked: a JSON object of this format whose identity fields
    (space, backend, device, protocol, calibration) have the types the rest of hwnas reads them as."""
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        raise LUTError(f"latency table {path}: its hwnas.lut metadata is not JSON; the file is damaged") from None
    if not isinstance(meta, dict):
        raise LUTError(f"latency table {path}: its hwnas.lut metadata is not a JSON object; the file is damaged")
    if meta.get("format") != FORMAT_VERSION:
        raise LUTError(f"latency table {path} has format {meta.get('format')!r:.40}, this hwnas reads {FORMAT_VERSION}")
    problem = None
    for field, required in (("space", ("name", "hash")), ("backend", ("name",)), ("device", ()), ("protocol", ())):
        value = meta.get(field, {} if not required else None)
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in required):
            problem = f"{field!r} must be an object" + (f" with string {', '.join(required)}" if required else "")
            break
    cal = meta.get("calibration")
    if problem is None and cal is not None:
        # coefficients of the kinds lut.calibrate.apply reads; another kind is refused there, by name
        numbers = {"affine": ("a", "b_ms"), "affine+count": ("a", "b_ms", "c_ms_per_block")}
        if not isinstance(cal, dict) or not isinstance(cal.get("kind"), str) or not all(
                isinstance(cal.get(k), (int, float)) and not isinstance(cal.get(k), bool)
                for k in numbers.get(cal["kind"], ())):
            problem = "'calibration' must be an object with a 'kind' and numeric coefficients"
    if problem is None and meta.get("resolutions") is not None and not (
            isinstance(meta["resolutions"], list) and all(isinstance(r, int) and r > 0 for r in meta["resolutions"])):
        problem = "'resolutions' must be a list of positive integers (or null)"
    if problem:
        raise LUTError(f"latency table {path}: damaged hwnas.lut metadata: {problem}")
    return meta


class LatencyTable:
    """Rows (a pandas DataFrame indexed by nothing, one row per key) plus metadata."""

    def __init__(self, rows, metadata: dict):
        import pandas as pd

        import numpy as np

        self.rows = pd.DataFrame(rows, columns=list(COLUMNS)) if not isinstance(rows, pd.DataFrame) else rows
        self.rows = self.rows.reindex(columns=list(COLUMNS))  # an older table lacks the context columns
        dup = self.rows["key"][self.rows["key"].duplicated()].tolist()
        if dup:
            raise LUTError(f"latency table has duplicate keys, e.g. {dup[0]!r}")
        self.metadata = dict(metadata)
        self._median = dict(zip(self.rows["key"], self.rows["median_ms"].astype(float)))
        ref = self.rows["ref_ms"].to_numpy(dtype=float)
        ctx = self.rows["context_ms"].to_numpy(dtype=float)
        lm = self.metadata.get("latency_model") or {}
        # context costs in the table's time scale: each block's cost relative to the reference of its
        # own window, times the reference's speed over the build (lut.reference, reference_speed_ms)
        self.reference_ms = reference_speed_ms(ref) if ref.size and not np.isnan(ref).any() else None
        self.reference_name: str | None = lm.get("reference")  # which reference (lut.reference) ref_ms timed
        self._context: dict[str, float] | None = None
        self.call_ms: float | None = None
        if ctx.size and not np.isnan(ctx).any() and lm.get("call_ms") is not None:
            if self.reference_ms is not None and lm.get("call_ref_ms"):
                self._context = dict(zip(self.rows["key"], ctx / ref * self.reference_ms))
                self.call_ms = float(lm["call_ms"]) / float(lm["call_ref_ms"]) * self.reference_ms
            else:
                self._context = dict(zip(self.rows["key"], ctx))
                self.call_ms = float(lm["call_ms"])

    # ----------------------------------------------------------------------- io
    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = Path(path)
        if p.is_dir():
            raise LUTError(f"latency table {p} is a directory, not a .parquet file")
        if not p.is_file():
            raise LUTError(f"latency table {p} does not exist")
        try:
            t = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as e:
            raise LUTError(f"latency table {p} is not readable Parquet: {e}") from None
        raw = (t.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise LUTError(f"{p} is a Parquet file without hwnas.lut metadata; not a latency table")
        meta = parse_metadata(raw, p)
        missing = [c for c in ("key", "kind", "median_ms") if c not in t.column_names]
        if missing:
            raise LUTError(f"latency table {p} lacks column(s) {missing}; not a table written by hwnas")
        return cls(t.to_pandas(), meta)

    def write(self, path: str | Path) -> Path:
        """Atomic write (temp file + rename): a reader never sees half a table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.rows.reset_index(drop=True), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[META_KEY] = json.dumps(dict(self.metadata, format=FORMAT_VERSION), sort_keys=True).encode()
        table = table.replace_schema_metadata(meta)
        with atomic_path(p) as tmp:
            pq.write_table(table, tmp)
        return p

    # ------------------------------------------------------------------- identity
    @property
    def space(self) -> dict:
        return self.metadata.get("space", {})

    @property
    def device(self) -> dict:
        return self.metadata.get("device", {})

    @property
    def backend(self) -> dict:
        return self.metadata.get("backend", {})

    @property
    def protocol(self) -> dict:
        return self.metadata.get("protocol", {})

    @property
    def calibration(self) -> dict | None:
        return self.metadata.get("calibration")

    def check_compatible(self, space_hash: str | None = None, device: dict | None = None, backend: str | None = None,
                         protocol: dict | None = None) -> None:
        """Raise :class:`LUTError` naming the first of space/device/backend/protocol that does not match."""
        where = f"latency table ({self.space.get('name')}@{self.space.get('hash')}, {self.backend.get('name')})"
        if space_hash is not None and space_hash != self.space.get("hash"):
            raise LUTError(f"{where} was built for space hash {self.space.get('hash')}, not {space_hash}; "
                           f"build a table for this space with `hwnas lut build`")
        if backend is not None and backend != self.backend.get("name"):
            raise LUTError(f"{where} was measured on backend {self.backend.get('name')}, not {backend}")
        if device is not None:
            diff = _device_mismatch(self.device, device)
            if diff:
                raise LUTError(f"{where} was measured on another device ({diff})")
        if protocol is not None and protocol != self.protocol:
            raise LUTError(f"{where} used timing protocol {self.protocol}, not {protocol}")

    # ----------------------------------------------------------------- prediction
    @property
    def keys(self) -> list[str]:
        return list(self._median)

    def __len__(self) -> int:
        return len(self._median)

    def __contains__(self, key: str) -> bool:
        return key in self._median

    def median_ms(self, key: str) -> float:
        try:
            return self._median[key]
        except KeyError:
            raise LUTError(f"block {key!r} is not in the latency table ({len(self)} blocks of space "
                           f"{self.space.get('name')}@{self.space.get('hash')}); rebuild or extend it with `hwnas lut build`"
                           ) from None

    def raw_sum_ms(self, keys: Iterable[str]) -> float:
        """The plain sum of isolated block medians (thesis §3.2.3): the baseline every prediction is shown beside."""
        return float(sum(self.median_ms(k) for k in keys))

    @property
    def has_context(self) -> bool:
        """Whether this table predicts with context costs (else: built by an earlier hwnas, plain sum)."""
        return self._context is not None

    def context_ms(self, key: str) -> float:
        """What block ``key`` costs inside a model (``lut.context``), in the table's time scale."""
        self.median_ms(key)  # names a missing key
        if self._context is None:
            raise LUTError("this latency table has no context costs (built before hwnas measured them); "
                           "rebuild it with `hwnas lut build` to predict with them")
        return self._context[key]

    def model_ms(self, keys: Sequence[str]) -> float:
        """Uncalibrated prediction: one call's overhead plus each block's context cost; the plain sum
        for a table without context costs."""
        keys = list(keys)
        if self._context is None:
            return self.raw_sum_ms(keys)
        return float(self.call_ms + sum(self.context_ms(k) for k in keys))

    def predict_ms(self, keys: Sequence[str], calibrated: bool = True) -> float:
        """Predicted latency of a model made of ``keys`` (ms): :meth:`model_ms`, calibrated if a
        calibration was fitted (on the same prediction) and ``calibrated``."""
        keys = list(keys)
        pred = self.model_ms(keys)
        if calibrated and self.calibration:
            from lut.calibrate import apply

            return apply(self.calibration, pred, len(keys))
        return pred

    def prediction(self, keys: Sequence[str]) -> dict:
        """Everything ``hwnas lut predict`` reports about one model (JSON-able)."""
        keys = list(keys)
        out = {"predicted_ms": self.predict_ms(keys), "model_ms": self.model_ms(keys), "raw_sum_ms": self.raw_sum_ms(keys),
               "n_blocks": len(keys), "latency_model": "context" if self.has_context else "plain sum",
               "call_ms": self.call_ms, "reference_ms": self.reference_ms,
               "calibrated_ms": self.predict_ms(keys, calibrated=True) if self.calibration else None}
        return out

    def with_calibration(self, calibration: dict | None) -> LatencyTable:
        meta = dict(self.metadata)
        if calibration is None:
            meta.pop("calibration", None)
        else:
            meta["calibration"] = calibration
        return LatencyTable(self.rows, meta)

    def summary(self) -> str:
        import numpy as np

        med = self.rows["median_ms"].to_numpy(dtype=float)
        d = self.device
        cal = self.calibration
        lines = [
            f"space      {self.space.get('name')}  hash={self.space.get('hash')}  resolutions={self.metadata.get('resolutions')}",
            f"backend    {self.backend.get('name')} {self.backend.get('version')}  settings={self.backend.get('settings')}",
            f"device     {d.get('cpu_model')} ({d.get('logical_cores')} cores, governor={d.get('governor')})"
            f"  gpu={d.get('gpu_name')}  host={d.get('hostname')}  threads={d.get('threads')}  precision={d.get('precision')}",
            f"protocol   {self.protocol}",
            f"blocks     {len(self)}  kinds={self.rows['kind'].value_counts().to_dict()}",
        ]
        if len(med):
            lines.append(f"median_ms  min {med.min():.4f}  median {np.median(med):.4f}  max {med.max():.4f}  "
                         f"sum {med.sum():.2f}; unstable rows {int(self.rows['unstable'].sum())}")
        lm = self.metadata.get("latency_model")
        if self.has_context:
            ctx = self.rows["context_ms"].to_numpy(dtype=float)
            lines.append(f"latency    context model ({lm.get('context')}, cache {lm.get('cache', 'warm')}): call overhead {self.call_ms:.4f} ms + block context costs "
                         f"(sum {ctx.sum():.2f} ms, {100 * ctx.sum() / med.sum():.0f} % of the isolated medians); "
                         + (f"reference {lm.get('reference')}, median {self.reference_ms:.4f} ms" if self.reference_ms
                            else "no drift reference"))
        else:
            lines.append("latency    plain sum of isolated medians (table built before hwnas measured context costs)")
        probe = (lm or {}).get("cache_probe") or {}
        if probe.get("retained_bytes") is not None:  # what decided the flushes (profilers.cache.probe_cache)
            lines.append(f"cache      {int(probe['retained_bytes']) / 2**20:.0f} MiB stayed cached between passes "
                         f"({probe.get('source', 'measured')}) on the building machine"
                         + (f"; climbs {'/'.join(f'{int(c) / 2**20:.0f}' for c in probe['climbs_bytes'])} MiB"
                            if probe.get("climbs_bytes") else ""))
        lines.append(f"calibration {cal if cal else 'none (predictions are uncalibrated)'}")
        return "\n".join(lines)
