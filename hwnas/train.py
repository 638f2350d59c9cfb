"""Supernet training with the sandwich rule and in-place distillation.

Sandwich rule (BigNAS, Yu et al. ECCV 2020; used by iNAS, thesis §3.3): every step runs the
largest subnet, the smallest and ``num_random`` uniformly sampled ones on the same batch,
accumulates their gradients and takes one optimizer step. The largest learns from the masks (BCE
on all 5 deep-supervision outputs); the others learn from the largest's *detached* finest
prediction (in-place distillation as in BigNAS/OFA): by default BCE with the teacher's
probabilities as soft targets on all 5 of their outputs (``student_loss="mse"`` uses MSE between
probabilities instead). Adam, linear warm-up then poly decay, multi-scale inputs (one of the
space's resolutions per step, shared by the four subnets so the teacher's map fits the students').

Determinism and resumption: everything random in a step — resolution, sampled subnets, data
order, augmentation — is a function of ``(seed, step)`` (data: ``(seed, epoch, index)``), so a run
restarted from a checkpoint after ``kill -9`` continues with exactly the losses an uninterrupted
run would have produced. Checkpoints (model, optimizer, scheduler, step, RNG states, space
name+hash, config) are written atomically every ``save_every`` steps and at the end.

Multi-process (``torchrun --nproc_per_node N -m hwnas supernet train ...``; gloo on CPU, NCCL on
GPU): the four forward passes of a step use *different sub-graphs* of the same parameters, which
DDP's reducer (one bucket schedule per graph, "unused parameter" bookkeeping, one allreduce per
backward) handles badly. Instead every rank samples the *same* subnets (same seeded RNG), reads its
own shard of the batch (the deterministic sampler below, as ``DistributedSampler`` would), runs the
four backward passes locally, and then gradients are averaged once with a single
``all_reduce`` over a flat buffer before the optimizer step. That is exactly data-parallel SGD on
the sandwich loss, with one communication per step. BN running statistics are local to each rank
during training and averaged across ranks before every checkpoint, so all ranks save identical
state (they are re-estimated per subnet before evaluation anyway).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hwnas.errors import CheckpointError, DataError, HwnasError

CHECKPOINT_NAME = "supernet.pt"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
PLOT_NAME = "curve.png"


@dataclass
class TrainConfig:
    space: str
    data: str | None
    out: str
    images: str | None = None  # explicit image/mask folders instead of layout detection
    masks: str | None = None
    steps: int | None = None  # exactly one of steps / epochs / minutes
    epochs: float | None = None
    minutes: float | None = None
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
    threads: int | None = None
    amp: bool = True  # CUDA only
    progress: bool = True
    # steps used to time a step when the budget is given in minutes
    probe_steps: int = field(default=5, repr=False)

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
        if self.lr <= 0:
            raise HwnasError(f"--lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# configuration that may differ between a run and its resumption without changing its results
_RESUMABLE_CHANGES = {"progress", "workers", "threads", "save_every", "device"}
_PATH_SETTINGS = {"data", "out", "images", "masks"}


def _same_setting(key: str, a: Any, b: Any) -> bool:
    if key in _PATH_SETTINGS and a is not None and b is not None:
        return Path(a).resolve() == Path(b).resolve()  # "runs/x" and "/abs/runs/x" are one folder
    return a == b


def poly_factor(step: int, total_steps: int | None, warmup_steps: int, power: float) -> float:
    """LR multiplier at ``step`` (0-based): linear warm-up from 0.1 to 1, then ``(1 - t)^power``."""
    if step < warmup_steps:
        return 0.1 + 0.9 * step / warmup_steps
    if not total_steps:
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return max(0.0, 1.0 - t) ** power


# ---------------------------------------------------------------------------- distributed
class _Dist:
    """World info; a no-op stand-in when not launched by torchrun."""

    def __init__(self, device_kind: str):
        import torch.distributed as dist

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self._dist = dist
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """In-place mean over ranks of ``tensors`` (one flat all_reduce)."""
        if not self.enabled or not tensors:
            return
        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        self._dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
            offset += n

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        if self.enabled:
            for t in tensors:
                self._dist.broadcast(t, src=0)

    def max_int(self, value: int) -> int:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX)
        return int(t.item())

    def gather_objects(self, obj) -> list:
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            self._dist.barrier()

    def close(self) -> None:
        if self.enabled and self._dist.is_initialized():
            self._dist.destroy_process_group()


# ------------------------------------------------------------------------------------ data
class _StepBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` keys for steps ``start .. end-1`` of this rank."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int, start: int, end: int):
        from hwnas.data import epoch_indices

        self._indices = lambda epoch: epoch_indices(n, seed, epoch, rank, world_size)
        self.per_epoch = len(self._indices(0)) // batch_size
        if self.per_epoch == 0:
            raise DataError(
                f"{n} training images are fewer than one batch ({batch_size} x {world_size} processes); "
                "lower --batch-size"
            )
        self.batch_size, self.start, self.end = batch_size, start, end

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        cached_epoch, order = -1, []
        for step in range(self.start, self.end):
            epoch, b = divmod(step, self.per_epoch)
            if epoch != cached_epoch:
                cached_epoch, order = epoch, self._indices(epoch)
            yield [(epoch, i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


class _EpochKeyed(torch.utils.data.Dataset):
    """Lets a DataLoader worker fetch item ``i`` as augmented in ``epoch`` (keys are ``(epoch, i)``)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        self.dataset.set_epoch(epoch)
        return self.dataset[i]


# --------------------------------------------------------------------------------- losses
def teacher_loss(outputs: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """Mean BCE of the 5 deep-supervision logit maps against the mask."""
    return sum(F.binary_cross_entropy_with_logits(o.float(), masks) for o in outputs) / len(outputs)


def student_loss(outputs: list[torch.Tensor], teacher_prob: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean distillation loss of the 5 outputs against the teacher's (detached) finest probability map."""
    if kind == "bce":
        losses = [F.binary_cross_entropy_with_logits(o.float(), teacher_prob) for o in outputs]
    else:
        losses = [F.mse_loss(torch.sigmoid(o.float()), teacher_prob) for o in outputs]
    return sum(losses) / len(losses)


# -------------------------------------------------------------------------------- trainer
def _resolve_device(name: str, dist_local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HwnasError("--device cuda: no CUDA device is available here; use --device cpu")
        if name == "cuda":
            name = f"cuda:{dist_local_rank}"
    elif name != "cpu":
        raise HwnasError(f"--device must be one of auto, cpu, cuda, cuda:N; got {name!r}")
    return torch.device(name)


def _load_log(path: Path, upto_step: int) -> list[dict[str, Any]]:
    """Log entries up to ``upto_step`` (later lines come from steps lost with a kill and are redone)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line from a kill
        if row.get("step", 0) <= upto_step:
            rows.append(row)
    return rows


from hwnas.fileio import atomic_write_text as _write_atomic  # noqa: E402


class Trainer:
    """Trains a :class:`~hwnas.supernet.Supernet` per :class:`TrainConfig`; :meth:`run` resumes from
    ``out/supernet.pt`` when it exists."""

    def __init__(self, cfg: TrainConfig, dataset=None):
        """``dataset`` replaces the folder dataset of ``cfg.data`` (benchmarks feed tensors directly)."""
        cfg.validate()
        from hwnas.data import SODFolder, resolve_split
        from hwnas.space import create
        from hwnas.supernet import Supernet

        self.cfg = cfg
        self.space = create(cfg.space)
        self.resolutions = sorted(cfg.resolutions or self.space.resolutions)
        bad = [r for r in self.resolutions if r not in self.space.resolutions]
        if bad:
            raise HwnasError(f"--resolutions {bad} not in space {self.space.name}; allowed: {list(self.space.resolutions)}")
        device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = _Dist(device_kind)
        self.device = _resolve_device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        if dataset is None:
            root = resolve_split(cfg.data, "train") if cfg.data else None
            dataset = SODFolder(root, max(self.resolutions), augment=cfg.augment, images=cfg.images,
                                masks=cfg.masks, seed=cfg.seed)
        self.dataset = dataset
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.net = Supernet(self.space).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total_steps: int | None = None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: poly_factor(s, self.total_steps, cfg.warmup_steps, cfg.poly_power)
        )
        self.amp_dtype = None
        if cfg.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.elapsed_s = 0.0
        self.log_rows: list[dict[str, Any]] = []
        per_epoch = (-(-len(self.dataset) // self.dist.world_size)) // cfg.batch_size
        if per_epoch == 0:
            raise DataError(f"{len(self.dataset)} training images are fewer than one batch of {cfg.batch_size} "
                            f"per process ({self.dist.world_size} processes); lower --batch-size")
        self.steps_per_epoch = per_epoch
        if cfg.steps is not None:
            self.total_steps = int(cfg.steps)
        elif cfg.epochs is not None:
            self.total_steps = max(1, int(round(cfg.epochs * per_epoch)))

    # ------------------------------------------------------------------ checkpoint
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def _payload(self) -> dict[str, Any]:
        from hwnas.checkpoint import capture_rng, space_record

        return {
            "space": space_record(self.space),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "total_steps": self.total_steps,
            "elapsed_s": self.elapsed_s,
            "world_size": self.dist.world_size,
            "rng": capture_rng(),
            "config": self.cfg.to_dict(),
        }

    def save(self) -> None:
        from hwnas.checkpoint import save_checkpoint

        if getattr(self, "_saved_step", None) == self.step:
            return
        self._saved_step = self.step

        # BN statistics are per rank during training; make every rank's saved state identical
        self.dist.average_([b for n, b in self.net.named_buffers() if b.is_floating_point()])
        if self.dist.main:
            # log first: a kill between the two leaves a log that reaches at least the checkpoint's step
            _write_atomic(self.out / LOG_NAME, "".join(json.dumps(r) + "\n" for r in self.log_rows))
            save_checkpoint(self._payload(), self.checkpoint_path)
        self.dist.barrier()

    def try_resume(self) -> bool:
        from hwnas.checkpoint import check_resumable, check_space, load_checkpoint, restore_rng

        path = self.checkpoint_path
        if not path.exists():
            return False
        ckpt = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
        check_space(ckpt, self.space, path)
        check_resumable(ckpt, path)
        old = ckpt.get("config", {})
        changed = sorted(k for k, v in self.cfg.to_dict().items()
                         if k not in _RESUMABLE_CHANGES and k in old and not _same_setting(k, old[k], v))
        if changed:
            raise CheckpointError(
                f"{path} holds a run with different settings ({', '.join(f'{k}: {old[k]!r} -> {getattr(self.cfg, k)!r}' for k in changed)}); "
                "use a new --out or the original settings"
            )
        if ckpt.get("world_size", 1) != self.dist.world_size:
            raise CheckpointError(f"{path} was trained with {ckpt.get('world_size')} processes, "
                                  f"this run has {self.dist.world_size}; resume with the same number")
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.total_steps = ckpt["total_steps"]
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.elapsed_s = float(ckpt["elapsed_s"])
        restore_rng(ckpt["rng"])
        self.log_rows = _load_log(self.out / LOG_NAME, self.step)
        return True

    # ------------------------------------------------------------------------ step
    def _step_rng(self, step: int) -> random.Random:
        return random.Random(self.cfg.seed * 1_000_003 + step)

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        rng = self._step_rng(self.step)
        res = rng.choice(self.resolutions)
        images, masks = images.to(self.device, non_blocking=True), masks.to(self.device, non_blocking=True)
        if images.shape[-1] != res:
            images = F.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)
            masks = F.interpolate(masks, size=(res, res), mode="bilinear", align_corners=False)
        archs = [self.space.largest(res), self.space.smallest(res)] + [
            self.space.sample(rng, resolution=res) for _ in range(self.cfg.num_random)
        ]
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        teacher_prob = None
        for k, arch in enumerate(archs):
            self.net.set_active(arch)
            with self._autocast():
                outputs = self.net(images)
            if k == 0:
                loss = teacher_loss(outputs, masks)
                teacher_prob = torch.sigmoid(outputs[0].detach().float())
            else:
                loss = student_loss(outputs, teacher_prob, self.cfg.student_loss)
            self._backward(loss)
            losses.append(float(loss.detach()))
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        self.dist.average_(grads)
        self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if self.cfg.grad_clip:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.net.set_active(archs[0])
        row = {
            "step": self.step + 1,
            "epoch": self.step // self.steps_per_epoch,
            "resolution": res,
            "lr": lr,
            "loss": sum(losses),
            "loss_largest": losses[0],
            "loss_smallest": losses[1],
            "loss_random": sum(losses[2:]) / max(1, len(losses) - 2),
        }
        if grad_norm is not None:
            row["grad_norm"] = grad_norm
        return row

    # ------------------------------------------------------------------------- run
    def _loader(self, start: int, end: int):
        sampler = _StepBatches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, self.dist.rank,
                               self.dist.world_size, start, end)
        return torch.utils.data.DataLoader(
            _EpochKeyed(self.dataset), batch_sampler=sampler, num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()
        if self.dist.main:
            _write_atomic(self.out / CONFIG_NAME, json.dumps({**cfg.to_dict(), "space_hash": self.space.hash,
                                                              "world_size": self.dist.world_size}, indent=2) + "\n")
        budget_s = cfg.minutes * 60 if cfg.minutes is not None else None
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and self.dist.main),
                   desc=f"supernet {self.space.name}", unit="step", dynamic_ncols=True)
        if resumed and self.dist.main:
            print(f"resumed from {self.checkpoint_path} at step {self.step}", file=sys.stderr, flush=True)
        stop_reason = "done"
        try:
            while self.total_steps is None or self.step < self.total_steps:
                # with a time budget, the number of steps (and so the LR schedule) is fixed after
                # timing the first steps, then stored in the checkpoint: a resume stays exact
                end = self.total_steps if self.total_steps is not None else self.step + cfg.probe_steps
                t_probe, probe_from = None, self.step
                # wall time per step includes data loading and checkpointing (counted in the next step)
                t_last = time.perf_counter()
                for images, masks in self._loader(self.step, end):
                    row = self.train_step(images, masks)
                    now = time.perf_counter()
                    dt, t_last = now - t_last, now
                    self.elapsed_s += dt
                    self.step += 1
                    row["elapsed_s"] = round(self.elapsed_s, 3)
                    row["step_s"] = round(dt, 4)
                    row["loadavg_1m"] = os.getloadavg()[0]  # the CPU may be shared: keep timings honest
                    self.log_rows.append(row)
                    if self.step - probe_from > 1:  # first step includes one-off setup costs
                        t_probe = dt if t_probe is None else t_probe + dt
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", res=row["resolution"], lr=f"{row['lr']:.2e}")
                    if self.step % cfg.save_every == 0 or self.step == self.total_steps:
                        self.save()
                    if budget_s is not None and self.elapsed_s > 1.25 * budget_s:
                        stop_reason = "time budget exceeded by 25 %; stopped early"
                        break
                if stop_reason != "done":
                    if self.total_steps is None:  # the budget ran out while timing the first steps
                        self.total_steps = self.step
                    break
                if self.total_steps is None:
                    per_step = t_probe / max(1, self.step - probe_from - 1) if t_probe else 1.0
                    wanted = max(self.step, int(budget_s / per_step))
                    self.total_steps = self.dist.max_int(wanted)
                    bar.total = self.total_steps
                    bar.refresh()
        finally:
            bar.close()
        self.save()
        summary = {
            "space": self.space.name,
            "space_hash": self.space.hash,
            "steps": self.step,
            "total_steps": self.total_steps,
            "elapsed_s": round(self.elapsed_s, 2),
            "world_size": self.dist.world_size,
            "final_loss_largest": self.log_rows[-1]["loss_largest"] if self.log_rows else None,
            "stop": stop_reason,
            "checkpoint": str(self.checkpoint_path),
        }
        if self.dist.enabled:
            # consistency check of the gradient averaging: every rank must end with the same state
            digests = self.dist.gather_objects(state_digest(self.net))
            summary["rank_state_sha256"] = digests
            if len(set(digests)) != 1:
                raise RuntimeError(f"ranks diverged: state digests {digests}")
        if self.dist.main:
            plot_curve(self.log_rows, self.out / PLOT_NAME, title=f"supernet {self.space.name}")
            _write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names and bytes): equal digests = identical weights."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def plot_curve(rows: list[dict[str, Any]], path: Path, title: str = "", extra: dict[str, float] | None = None) -> None:
    """Training curve PNG: per-step losses (faint) and their moving averages, LR on a twin axis."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    window = max(1, len(rows) // 30)
    for key, colour in (("loss_largest", "C0"), ("loss_smallest", "C1"), ("loss_random", "C2")):
        y = np.array([r[key] for r in rows], dtype=float)
        ax.plot(steps, y, color=colour, alpha=0.2, linewidth=0.8)
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color=colour, label=key.replace("loss_", "") + (" (vs mask)" if key == "loss_largest" else " (distill)"))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lr"] for r in rows], color="gray", linestyle=":", label="lr")
    ax2.set_ylabel("learning rate")
    ax.legend(loc="upper right")
    if extra:
        ax.set_title(title + "  " + ", ".join(f"{k}={v:.3f}" for k, v in extra.items()), fontsize=9)
    else:
        ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a supernet; returns a summary dict. Cleans up the process group."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.dist.close()
