"""What a supernet training run is: its settings, its files, and which settings a resume may change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError

CHECKPOINT_NAME = "supernet.pt"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
PLOT_NAME = "curve.png"
SUMMARY_NAME = "summary.json"


@dataclass
class TrainConfig:
    space: str
    data: str | None
    out: str
    images: str | None = None  # explicit image/mask folders instead of layout detection
    masks: str | None = None
    steps: int | None = None  # exactly one of steps / epochs / minutes
    epochs: float | None = None
    minutes: float | None = None  # wall-clock budget of the whole run; the LR schedule follows the time spent
    batch_size: int = 16  # per process
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    poly_power: float = 0.9
    num_random: int = 2
    student_loss: str = "bce"  # "bce" (soft targets) or "mse"
    grad_clip: float | None = 5.0
    resolutions: list[int] | None = None  # default: the space's
    augment: bool = True
    seed: int = 0
    save_every: int = 50
    workers: int = 0
    device: str = "auto"
    threads: int | str | None = None  # torch threads; "auto": the fastest count right now (supernet_training.threads)
    amp: bool = True  # CUDA only
    progress: bool = True

    def validate(self) -> None:
        given = [k for k in ("steps", "epochs", "minutes") if getattr(self, k) is not None]
        if len(given) != 1:
            raise HwnasError(f"give exactly one of --steps, --epochs, --minutes (got {given or 'none'})")
        for name in given:
            if getattr(self, name) <= 0:
                raise HwnasError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise HwnasError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.student_loss not in ("bce", "mse"):
            raise HwnasError(f"--student-loss must be one of bce, mse; got {self.student_loss!r}")
        if self.num_random < 0:
            raise HwnasError(f"--num-random must be >= 0, got {self.num_random}")
        if self.save_every < 1:
            raise HwnasError(f"--save-every must be >= 1, got {self.save_every}")
        if self.threads is not None and self.threads != "auto" and not (isinstance(self.threads, int) and self.threads >= 1):
            raise HwnasError(f"--threads must be a positive integer or 'auto', got {self.threads!r}")
        if self.lr <= 0:
            raise HwnasError(f"--lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# configuration that may differ between a run and its resumption without changing its results
RESUMABLE_CHANGES = {"progress", "workers", "threads", "save_every", "device"}
_PATH_SETTINGS = {"data", "out", "images", "masks"}


def _same_setting(key: str, a: Any, b: Any) -> bool:
    if key in _PATH_SETTINGS and a is not None and b is not None:
        return Path(a).resolve() == Path(b).resolve()  # "runs/x" and "/abs/runs/x" are one folder
    return a == b


def changed_settings(old: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Settings of ``cfg`` that differ from a checkpoint's ``old`` ones and would change the results."""
    return sorted(k for k, v in cfg.to_dict().items()
                  if k not in RESUMABLE_CHANGES and k in old and not _same_setting(k, old[k], v))
