"""Eager PyTorch on a CUDA GPU, timed with CUDA events.

Each sample is the elapsed time between two events recorded around the forward on the current
stream; the host waits (``end.synchronize()``) *after* the end event, outside the timed region.
Inputs live on the GPU before timing starts (no host-to-device copies timed). ``fp16`` runs the
model and inputs in half precision; the precision is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.fingerprint import nvidia_smi_info
from profilers.stats import Measurement, time_callable


class _EventClock:
    """Turns CUDA events into the (run, clock) pair ``time_callable`` expects: ``run`` records a
    start event, launches, records an end event and synchronises on it; the clock reports the
    accumulated GPU time, so only the kernels between the events are measured."""

    def __init__(self, fn):
        import torch

        self.fn = fn
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)
        self.gpu_s = 0.0
        self.in_run = False

    def run(self):
        self.start.record()
        self.fn()
        self.end.record()
        self.end.synchronize()  # wait outside the measured interval (the events bracket the GPU work)
        self.gpu_s += self.start.elapsed_time(self.end) / 1e3

    def clock(self) -> float:
        return self.gpu_s


class TorchCUDA(Profiler):
    name = "torch-cuda"
    artifact_suffix = ".pt2"
    runtime = "torch-cuda"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, device: int = 0):
        super().__init__(threads, precision, protocol)
        self.device = int(device)

    @classmethod
    def precisions(cls) -> tuple[str, ...]:
        return ("fp32", "fp16")

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        import torch

        if torch.version.cuda is None:
            return False, f"torch {torch.__version__} is a CPU-only build"
        if not torch.cuda.is_available():
            return False, "no CUDA device visible (torch.cuda.is_available() is False)"
        return True, f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"

    def runtime_version(self) -> str:
        import torch

        return f"{torch.__version__} cuda{torch.version.cuda} cudnn{torch.backends.cudnn.version()}"

    def settings(self) -> dict:
        return {"device": self.device, "precision": self.precision, "cudnn_benchmark": True, "timer": "cuda-events"}

    def device_info(self) -> dict:
        import torch

        info = super().device_info()
        info.update(nvidia_smi_info())
        if torch.cuda.is_available() and not info.get("gpu_name"):
            info["gpu_name"] = torch.cuda.get_device_name(self.device)
        return info

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.pt2_export import export_pt2

        return export_pt2(model, tuple(example_inputs), path)

    def _time(self, module, inputs) -> Measurement:
        import torch

        ok, reason = self.check_available()
        if not ok:
            raise ProfilerError(f"{self.name} unavailable: {reason}")
        dev = torch.device("cuda", self.device)
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        torch.backends.cudnn.benchmark = True
        # no .eval() here: a loaded torch.export module refuses it (it is exported in eval mode)
        module = module.to(dev, dtype)
        inputs = tuple(t.to(dev, dtype) for t in inputs)
        with torch.cuda.device(dev), torch.inference_mode():
            ev = _EventClock(lambda: module(*inputs))
            torch.cuda.synchronize()
            return time_callable(ev.run, self.protocol, clock=ev.clock, info=self.settings())

    def measure(self, model, example_inputs: tuple) -> Measurement:
        return self._time(model.eval(), tuple(example_inputs))

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        import torch

        module = torch.export.load(str(path)).module()
        g = torch.Generator().manual_seed(0)
        return self._time(module, tuple(torch.randn(s, generator=g) for s in input_shapes))
