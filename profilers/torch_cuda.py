"""PyTorch on a CUDA GPU, timed with CUDA events, by default as CUDA-graph replays.

Each sample is the elapsed time between two events recorded on the current stream around one
inference; the host waits (``end.synchronize()``) *after* the end event, outside the timed region.
Inputs live on the GPU before timing starts (no host-to-device copies timed). ``fp16`` runs the
model and inputs in half precision; the precision is recorded.

``timer`` chooses what one inference is:

* ``cuda-graph`` (default): the forward captured once as a CUDA graph (after warm-up runs on a
  side stream, so cuDNN's autotuning and lazy initialisation stay outside the capture) and
  *replayed*. Why: eager PyTorch launches each kernel from Python, and a small block's kernels
  finish before the host has launched the next, so its events measure launch gaps. A whole model
  hides many of them behind its queue, an isolated block cannot: on an H100 the plain sum of eager
  blocks overestimated every inas-sod model at 320 px, by 38 % (README). A replay launches the
  whole graph at once, so blocks and models both pay their kernels and one launch, and a table
  subtracts no call per block (:attr:`TorchCUDA.call_in_samples`). This is also how a latency-critical deployment runs (``torch.compile(mode="reduce-overhead")``,
  TensorRT's ``--useCudaGraph``).
* ``cuda-events``: the eager forward (what tables before the graph timer measured; their recorded
  settings say so and ``profilers.from_identity`` rebuilds them with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from deploy.fileio import first_line
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


TIMERS = ("cuda-graph", "cuda-events")
# eager runs on a side stream before a capture: cuDNN's benchmark mode tries its algorithms on the
# first run of each shape, and allocations and lazy module state must exist before capture
GRAPH_WARMUP_RUNS = 3


def capture_graph(module, inputs) -> Callable[[], object]:
    """``module(*inputs)`` captured as a CUDA graph; returns its ``replay`` (which keeps the graph,
    its memory pool and its static inputs and outputs alive)."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_RUNS):
            module(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            module(*inputs)
    except Exception as e:  # an op that synchronises or leaves the GPU cannot be captured
        raise ProfilerError(f"torch-cuda: capturing the model as a CUDA graph failed ({first_line(e, with_type=True)}); "
                            "time it eagerly with --backend-option timer=cuda-events") from None
    return graph.replay


class TorchCUDA(Profiler):
    name = "torch-cuda"
    artifact_suffix = ".pt2"
    runtime = "torch-cuda"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, device: int = 0,
                 timer: str = "cuda-graph"):
        super().__init__(threads, precision, protocol)
        if timer not in TIMERS:
            raise ProfilerError(f"{self.name}: timer {timer!r} unknown; allowed: {list(TIMERS)}")
        self.device = int(device)
        self.timer = timer

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
        return {"device": self.device, "precision": self.precision, "cudnn_benchmark": True, "timer": self.timer}

    def options(self) -> dict:
        return {"timer": self.timer}

    @property
    def call_in_samples(self) -> bool:
        """A replay's sample holds no call overhead to subtract per block (``Profiler.call_in_samples``):
        the empty model's replay takes ~10 us between its events on an H200 (the GPU's latency to
        start and finish a graph), but in two runs of 18 inas-sod models at 320 px the blocks' replays
        summed to only 1.8-3.0 us per block more than the whole model's (plain sums +8.0 / +7.8 %),
        and subtracting ~10 us per block predicted every model 23-33 % low (``bench/cuda_graphs.py``).
        Eager samples hold the host's launches: there the call is subtracted, as before."""
        return self.timer != "cuda-graph"

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
            run = capture_graph(module, inputs) if self.timer == "cuda-graph" else (lambda: module(*inputs))
            ev = _EventClock(run)
            torch.cuda.synchronize()
            return time_callable(ev.run, self.protocol, clock=ev.clock, info=self.settings())

    def measure(self, model, example_inputs: tuple) -> Measurement:
        return self._time(model.eval(), tuple(example_inputs))

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        import torch

        module = torch.export.load(str(path)).module()
        g = torch.Generator().manual_seed(0)
        return self._time(module, tuple(torch.randn(s, generator=g) for s in input_shapes))
