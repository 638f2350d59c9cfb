"""Pieces the search benchmarks share: the latency source of a search and writing a result file."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def latency_source(space, lut: str | None, resolution: int | None, calibrated: bool = True):
    """(latency model, its description for the result file, resolution): the table at ``lut``, or the
    synthetic MAC-count model (not measured) when there is none."""
    from deploy.fileio import file_digest

    if lut:
        from hwnas.search.fitness import LutLatency

        latency = LutLatency.from_file(lut, space, calibrated=calibrated)
        source = {"kind": "lut", "path": lut, "sha256": file_digest(lut),
                  "calibrated": calibrated and bool(latency.table.calibration)}
        return latency, source, resolution or latency.resolutions[0]
    from hwnas.search.synthetic import MacsLatencyModel

    return (MacsLatencyModel(space), {"kind": "synthetic MacsLatencyModel (not measured)"},
            resolution or min(space.resolutions))


def write_result(out: str | Path, result: dict) -> Path:
    """The benchmark's JSON result, written atomically; says where on stderr."""
    from deploy.fileio import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return out


def write_result_and_report(stem: str, result: dict, lines: list[str]) -> Path:
    """``bench/results/<stem>.json`` (:func:`write_result`) and ``<stem>.md`` from ``lines``, which are
    printed too."""
    out = write_result(Path(__file__).resolve().parent / "results" / f"{stem}.json", result)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


def build_and_model_profilers(backend: str = "onnxruntime-cpu", threads: int = 1, **protocol):
    """(blocks' profiler, whole models' profiler) of ``backend`` with the build's protocol (``protocol``:
    fields to change in it): the first makes artifacts as ``hwnas lut build`` does (TorchScript ONNX where
    the backend has a choice), the second as ``hwnas export`` does (dynamo); both measure alike."""
    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL

    block_prof = profilers.from_identity({"name": backend, "options": {}}, threads=threads, precision="fp32",
                                         protocol=profilers.Protocol(**dict(BUILD_PROTOCOL, **protocol)),
                                         artifacts={"exporter": "torchscript"})
    return block_prof, block_prof.exporting_as({"exporter": "dynamo"})
