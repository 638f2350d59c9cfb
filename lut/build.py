"""Build a latency table: measure every distinct block once, resumably.

Blocks are measured in a seeded random order (so drift in the machine's state spreads over the
table instead of biasing one kind of block). Each finished row is appended to a JSON-lines
journal next to the output (``<out>.journal.jsonl``) and flushed to disk, so a build killed at
any point (even ``kill -9``) loses at most the block in flight: rerunning the same command skips
the journaled keys. At the end the journal is compacted into the Parquet table (atomic write)
and removed. An existing table at ``out`` is extended (new resolutions, new blocks), never mixed
with measurements of another space, device, backend or protocol.
"""

from __future__ import annotations

import datetime as _dt
import random
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

from deploy.fileio import Journal
from lut.blocks import BlockSpec
from lut.errors import LUTError
from lut.measure import latency_model_kind
from lut.reference import REFERENCE_NAME
from lut.table import COLUMNS, LatencyTable, compatibility_problem


def journal_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".journal.jsonl")


def artifacts_path(out: str | Path) -> Path:
    """Where a build keeps its exported blocks until the table is written (``<out>.artifacts/``)."""
    out = Path(out)
    return out.with_name(out.name + ".artifacts")


def recorded_metadata(out: str | Path) -> dict:
    """The metadata of the table at ``out``, else of the journal of its unfinished build, else ``{}``
    (read without the lock: for decisions a resumed build must repeat, e.g. ``cache_probe``)."""
    out = Path(out)
    if out.is_file():
        return LatencyTable.read(out).metadata
    return _journal(journal_path(out), None).peek_header() or {}


def table_metadata(profiler, space: dict, resolutions: Sequence[int] | None = None, flushed: bool = False,
                   between: bool = False, reference: str = REFERENCE_NAME) -> dict:
    """The identity a table is stored with (see ``lut.table``)."""
    device = profiler.device_info()
    ident = profiler.identity()
    return {
        "space": dict(space),
        "device": device,
        "backend": {"name": ident["name"], "version": device.get("runtime_version"), "settings": ident["settings"],
                    "options": ident["options"]},
        "protocol": profiler.protocol.to_dict(),
        # how block artifacts were produced (recorded, not compared: whole models may be made another way)
        "artifacts": ident["artifacts"],
        "resolutions": sorted(set(int(r) for r in resolutions)) if resolutions else None,
        "latency_model": latency_model_kind(profiler, flushed, between, reference),
    }


def _journal(path: Path, identity: dict | None) -> Journal:
    """The build journal: one header (the table's metadata, compared as tables are), then one line
    per measured window ``{"row": ..., "round": r}``; damaged lines are skipped with a warning."""
    return Journal(path, identity, what=f"journal {path}", problem=compatibility_problem, check=_row_problem,
                   lost="one block measurement (a rerun of the build measures it again)")


def _row_problem(obj: dict) -> str | None:
    row = obj.get("row")
    if not isinstance(row, dict) or not isinstance(row.get("key"), str) or "median_ms" not in row:
        return "not a measurement row"
    if not isinstance(obj.get("round", 0), int):
        return "round is not an integer"
    return None


def _journal_rows(rows: list[dict]) -> list[dict]:
    return [dict(o["row"], round=int(o.get("round", 0))) for o in rows]


def _read_journal(path: Path) -> tuple[dict | None, list[dict]]:
    """Header and usable rows (each with its ``round``, 0 when absent), read without the lock;
    a journal holding two headers (two builds wrote into it) is refused."""
    j = _journal(path, None)
    rows = j.read()
    return j.header, _journal_rows(rows)


def _by_key_and_round(journaled: list[dict]) -> dict[str, dict[int, dict]]:
    """``{key: {round: row}}`` of journal rows (a window measured twice keeps its first row)."""
    out: dict[str, dict[int, dict]] = {}
    for r in journaled:
        out.setdefault(r["key"], {}).setdefault(r["round"], r)
    return out


def _pooled_row(block_rows: list[dict], unstable_iqr: float) -> dict:
    """The table row of a block measured in several rounds (one journal row each)."""
    from profilers.stats import Measurement, pool

    import math

    import numpy as np

    if len(block_rows) == 1:
        return {k: v for k, v in block_rows[0].items() if k != "round"}
    m = pool([Measurement.from_dict(r) for r in block_rows], unstable_iqr)
    row = {k: v for k, v in m.to_dict().items() if k in COLUMNS}
    last = block_rows[-1]
    row.update(key=last["key"], kind=last["kind"], input_shapes=last["input_shapes"], measured_at=last["measured_at"])
    # the context cost, relative to the reference of its own window, is a ratio: the median ratio of
    # the rounds, stated at the rounds' median reference speed
    ref = [float(r.get("ref_ms", math.nan)) for r in block_rows]
    ctx = [float(r.get("context_ms", math.nan)) for r in block_rows]
    if not any(math.isnan(x) for x in ref + ctx):
        ref_ms = float(np.median(ref))
        row.update(ref_ms=ref_ms, context_ms=float(np.median([c / r for c, r in zip(ctx, ref)])) * ref_ms)
    elif not any(math.isnan(x) for x in ctx):
        row.update(ref_ms=math.nan, context_ms=float(np.median(ctx)))
    for col in ("context_share", "context_io_ms"):
        row[col] = float(np.median([float(r.get(col, math.nan)) for r in block_rows]))
    return row


def _row(block: BlockSpec, m) -> dict:
    d = m.to_dict()
    row = {k: d[k] for k in COLUMNS if k in d}
    row.update(key=block.key, kind=block.kind,
               input_shapes=",".join("x".join(str(x) for x in s) for s in block.input_shapes),
               measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return row


def build(blocks: Sequence[BlockSpec], profiler, out: str | Path, space: dict, *, resolutions=None, seed: int = 0,
          progress: bool = True, limit: int | None = None, on_row: Callable[[dict], None] | None = None,
          model_bytes: Mapping[str, int] | None = None,
          model_between: Mapping[str, Callable[[], tuple]] | None = None, reference: str = REFERENCE_NAME,
          cache_probe: dict | None = None) -> LatencyTable:
    """See :func:`_build`. One build at a time per ``out``: the journal's lock is taken before the
    table is read (a second build is refused naming the first one's pid) and held until the table
    is written and the journal removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    journal = _journal(journal_path(out), None).lock()
    try:
        return _build(blocks, profiler, out, space, journal, resolutions=resolutions, seed=seed, progress=progress,
                      limit=limit, on_row=on_row, model_bytes=model_bytes, model_between=model_between,
                      reference=reference, cache_probe=cache_probe)
    finally:
        journal.close()


def _build(blocks: Sequence[BlockSpec], profiler, out: Path, space: dict, journal: Journal, *, resolutions=None,
           seed: int = 0, progress: bool = True, limit: int | None = None,
           on_row: Callable[[dict], None] | None = None, model_bytes: Mapping[str, int] | None = None,
           model_between: Mapping[str, Callable[[], tuple]] | None = None, reference: str = REFERENCE_NAME,
           cache_probe: dict | None = None) -> LatencyTable:
    """Measure each distinct key of ``blocks`` with ``profiler`` into the table at ``out``.

    ``space`` is ``{"name": ..., "hash": ...}``. With ``profiler.protocol.rounds`` = R > 1 the
    table is measured R times, each pass in a new random order, every block exported once, and a
    block's row is its fastest window (``profilers.stats.pool``). ``model_bytes`` (block key -> bytes
    a model holding it touches per inference, e.g. ``SearchSpace.model_bytes``): context runs follow
    a cache flush of that size; ``model_between`` (block key -> builder of a whole model at its
    resolution): on runtimes that profile nodes, an untimed run of that model instead
    (``lut.measure.BlockMeter``; where: ``hwnas.cli.lut._cold_context_plan``). ``limit`` stops after that many new measurements (the journal
    stays, a rerun continues). ``reference``: the drift reference (``lut.reference``); a table or
    journal already at ``out`` keeps the one its rows were measured against. ``cache_probe``: what
    decided the flushes (``profilers.cache.probe_cache``), recorded in the metadata. Returns the table
    (compacted only when complete; otherwise the rows finished so far, unwritten).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = LatencyTable.read(out) if out.exists() else None
    # an extended table or a resumed build keeps the drift reference its rows were measured against
    prior = existing.metadata if existing is not None else journal.peek_header() or {}
    reference = (prior.get("latency_model") or {}).get("reference") or reference
    meta = table_metadata(profiler, space, resolutions, flushed=bool(model_bytes), between=bool(model_between),
                          reference=reference)
    rounds = int(getattr(profiler.protocol, "rounds", 1))
    iqr = profiler.protocol.unstable_iqr
    finished: dict[str, dict] = {}  # key -> table row (every round in)

    if existing is not None:
        problem = compatibility_problem(existing.metadata, meta)
        if problem:
            raise LUTError(f"{out} exists and cannot be extended by this build: {problem}; use another --out")
        for r in existing.rows.to_dict("records"):
            r["samples_ms"] = [float(x) for x in r["samples_ms"]]
            finished[r["key"]] = r
        old_res = existing.metadata.get("resolutions") or []
        meta["resolutions"] = sorted(set(old_res) | set(meta["resolutions"] or []))
        if existing.calibration:  # a calibration fitted on the old blocks stays valid for them
            meta["calibration"] = existing.calibration
        if existing.metadata.get("latency_model"):
            meta["latency_model"] = existing.metadata["latency_model"]

    jpath = journal.path
    journal.identity = meta  # the header is written with the first row, from meta as it is then
    journal.open()  # refuses a journal of other settings, or one holding two headers
    header, journaled = journal.header, _journal_rows(journal.rows)
    by_round = _by_key_and_round([r for r in journaled if r["key"] not in finished])

    unique: dict[str, BlockSpec] = {}
    for b in blocks:
        unique.setdefault(b.key, b)
    todo: list[tuple[int, str]] = []
    for rnd in range(rounds):
        keys = [k for k in sorted(unique) if k not in finished and rnd not in by_round.get(k, {})]
        random.Random(seed if rnd == 0 else f"{seed}|{rnd}").shuffle(keys)
        todo += [(rnd, k) for k in keys]
    if limit is not None:
        todo = todo[:limit]

    def complete(key: str) -> bool:
        return key in finished or len(by_round.get(key, {})) >= rounds

    if todo:
        import tempfile

        from tqdm import tqdm

        from lut.measure import BlockMeter

        with tempfile.TemporaryDirectory(prefix="hwnas-lut-") as tmp:
            meter = BlockMeter(profiler, Path(tmp), seed=seed, model_bytes=model_bytes, model_between=model_between,
                               reference=reference, cache_probe=cache_probe)
            # a resumed or extended build keeps the call overhead its first rows were measured with
            prior = (header or {}).get("latency_model") or meta.get("latency_model")
            if prior:
                meter.adopt(prior)
            meter.measure_io([unique[k] for _, k in todo])  # before describe(): the journal's header records it
            meta["latency_model"] = meter.describe()
            desc = f"lut {space.get('name')} on {meta['backend']['name']}" + (f", {rounds} rounds" if rounds > 1 else "")
            # exported once, ahead of all timing, measured in every round; kept beside the output until
            # the table is written, so a resumed build does not export again
            artifacts = meter.export_ahead([unique[k] for k in dict.fromkeys(k for _, k in todo)],
                                           artifacts_path(out), progress=progress)
            bar = tqdm(todo, desc=desc, unit="block", disable=not progress, total=len(todo))
            for rnd, key in bar:
                block = unique[key]
                m, extra = meter.measure(block, artifacts[key], window=rnd)
                row = dict(_row(block, m), **extra)
                journal.append({"row": row, "round": rnd})
                by_round.setdefault(key, {})[rnd] = dict(row, round=rnd)
                bar.set_postfix_str(f"{block.kind} {m.median_ms:.3f} ms")
                if complete(key):
                    finished[key] = _pooled_row([by_round[key][i] for i in sorted(by_round[key])], iqr)
                    if on_row:
                        on_row(finished[key])
                    shutil.rmtree(artifacts.pop(key).isolated.parent, ignore_errors=True)
    elif header is not None and header.get("latency_model"):
        meta["latency_model"] = header["latency_model"]

    for key, rows in by_round.items():  # journaled by an earlier run, complete now
        if key not in finished and complete(key):
            finished[key] = _pooled_row([rows[i] for i in sorted(rows)], iqr)
    table = LatencyTable([finished[k] for k in sorted(finished)], meta)  # old rows of an extended table stay
    if all(k in finished for k in unique):
        table.write(out)
        jpath.unlink(missing_ok=True)
        shutil.rmtree(artifacts_path(out), ignore_errors=True)
    return table


def read_rows(path: str | Path) -> tuple[dict, list[dict]]:
    """(metadata, rows) of a finished table or of a build's journal (an unfinished build)."""
    p = Path(path)
    if p.is_dir():
        raise LUTError(f"{p} is a directory; pass finished .parquet tables or <out>.journal.jsonl files")
    if not p.is_file():
        raise LUTError(f"{p} does not exist (a finished build removes its journal: pass the .parquet)")
    if p.name.endswith(".journal.jsonl"):
        header, journaled = _read_journal(p)
        if header is None:
            raise LUTError(f"{p} has no header line; not a latency-table journal")
        proto = header.get("protocol") or {}
        rounds, iqr = int(proto.get("rounds", 1)), float(proto.get("unstable_iqr", 0.10))
        rows = [_pooled_row([rs[i] for i in sorted(rs)], iqr)
                for rs in _by_key_and_round(journaled).values() if len(rs) >= rounds]
        return header, rows
    t = LatencyTable.read(p)
    rows = t.rows.to_dict("records")
    for r in rows:
        r["samples_ms"] = [float(x) for x in r["samples_ms"]]
    return t.metadata, rows


def merge(inputs: Sequence[str | Path], out: str | Path) -> LatencyTable:
    """One table from several builds of the same space/device/backend/protocol (tables or journals),
    e.g. parts of one build run side by side. A key measured twice keeps its first measurement."""
    if not inputs:
        raise LUTError("merge needs at least one input table or journal")
    meta, rows = read_rows(inputs[0])
    meta = dict(meta)
    by_key = {r["key"]: r for r in rows}
    for path in inputs[1:]:
        other, more = read_rows(path)
        problem = compatibility_problem(meta, other)
        if problem:
            raise LUTError(f"cannot merge {path} into {inputs[0]}: {problem}")
        meta["resolutions"] = sorted(set(meta.get("resolutions") or []) | set(other.get("resolutions") or [])) or None
        for r in more:
            by_key.setdefault(r["key"], r)
    table = LatencyTable([by_key[k] for k in sorted(by_key)], meta)
    lock = _journal(journal_path(out), None).lock()  # a build of ``out`` running now: refused, naming it
    try:
        table.write(out)
    finally:
        lock.close()
    return table
