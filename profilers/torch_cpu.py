"""Eager PyTorch on the CPU: the reference the exported runtimes are compared with.

Intra-op threads fixed with ``torch.set_num_threads`` for the duration of a measurement (and
restored after); inference under ``torch.inference_mode``. The artifact for remote runs is a
``torch.export`` program (``.pt2``).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from deploy.fileio import first_line
from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, time_callable


@contextmanager
def torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class TorchCPU(Profiler):
    name = "torch-cpu"
    artifact_suffix = ".pt2"
    runtime = "torch"

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        import torch

        return True, f"torch {torch.__version__}"

    def runtime_version(self) -> str:
        import torch

        return torch.__version__

    def settings(self) -> dict:
        return {"intra_op_threads": self.threads, "mode": "eager", "inference_mode": True}

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.pt2_export import export_pt2

        return export_pt2(model, tuple(example_inputs), path)

    def _time(self, module, inputs) -> Measurement:
        import torch

        with torch_threads(self.threads), torch.inference_mode():
            return time_callable(lambda: module(*inputs), self.protocol, info=self.settings())

    def measure(self, model, example_inputs: tuple) -> Measurement:
        return self._time(model.eval(), tuple(example_inputs))

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        import torch

        try:
            module = torch.export.load(str(path)).module()
        except Exception as e:  # torch.export raises several types for unreadable files
            raise ProfilerError(f"{self.name}: cannot load {path}: {first_line(e)}") from None
        g = torch.Generator().manual_seed(0)
        return self._time(module, tuple(torch.randn(s, generator=g) for s in input_shapes))
