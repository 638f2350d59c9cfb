"""The training loop: one sandwich-rule step, checkpoints, resumption, the budget, the summary."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deploy.fileio import Journal, atomic_write_text, check_identity
from hwnas.errors import CheckpointError, DataError, HwnasError
from hwnas.supernet_training.config import (
    CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, PLOT_NAME, SUMMARY_NAME, TrainConfig, changed_settings,
)
from hwnas.supernet_training.losses import student_loss, teacher_loss
from hwnas.supernet_training.sampler import EpochKeyed, StepBatches
from hwnas.supernet_training.schedule import BudgetSchedule, StepTimer, poly_factor

_ENDLESS = 10**12  # a budgeted run's loader end: the clock, not the sampler, ends it


def load_log(path: Path, upto_step: int) -> list[dict[str, Any]]:
    """Log entries up to ``upto_step`` (later lines come from steps lost with a kill and are redone)."""
    # rewritten atomically, so never torn; a damaged line is skipped with a warning like every journal's
    rows = Journal(path, None, what=f"training log {path}", lost="one log row (the curve misses a point)").read()
    return [row for row in rows if row.get("step", 0) <= upto_step]


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names and bytes): equal digests = identical weights."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Trainer:
    """Trains a :class:`~hwnas.supernet.Supernet` per :class:`TrainConfig`; :meth:`run` resumes from
    ``out/supernet.pt`` when it exists."""

    def __init__(self, cfg: TrainConfig, dataset=None):
        """``dataset`` replaces the folder dataset of ``cfg.data`` (benchmarks feed tensors directly)."""
        self._t_start = time.perf_counter()  # a budget counts the whole run, set-up included
        cfg.validate()
        from hwnas.data import SODFolder, resolve_split
        from hwnas.process_group import ProcessGroup
        from hwnas.space import create
        from hwnas.supernet import Supernet

        self.cfg = cfg
        self.space = create(cfg.space)
        self.resolutions = sorted(cfg.resolutions or self.space.resolutions)
        bad = [r for r in self.resolutions if r not in self.space.resolutions]
        if bad:
            raise HwnasError(f"--resolutions {bad} not in space {self.space.name}; allowed: {list(self.space.resolutions)}")
        self.dist = ProcessGroup.from_env(cfg.device)
        self.device = self.dist.device
        if cfg.threads and cfg.threads != "auto":
            torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        if dataset is None:
            root = resolve_split(cfg.data, "train") if cfg.data else None
            dataset = SODFolder(root, max(self.resolutions), augment=cfg.augment, images=cfg.images,
                                masks=cfg.masks, seed=cfg.seed)
        self.dataset = dataset
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.net = Supernet(self.space).to(self.device)
        self.threads_probe_s: dict[int, float] = {}
        if cfg.threads == "auto" and self.device.type == "cpu":
            from hwnas.supernet_training.threads import candidate_threads, probe_threads

            chosen, self.threads_probe_s = probe_threads(self.net, self.space, max(self.resolutions), cfg.batch_size,
                                                         candidate_threads(self.dist.world_size))
            torch.set_num_threads(chosen)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total_steps: int | None = None
        self.budget_s = cfg.minutes * 60 if cfg.minutes is not None else None
        self.budget = BudgetSchedule(cfg.warmup_steps, cfg.poly_power) if self.budget_s is not None else None
        self.timer = StepTimer()
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
            "scheduler": self.budget.state_dict() if self.budget is not None else {"by": "steps"},
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "total_steps": self.total_steps,  # None while a budgeted run is under way
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
        t0 = time.perf_counter()
        # BN statistics are per rank during training; make every rank's saved state identical
        self.dist.average_([b for n, b in self.net.named_buffers() if b.is_floating_point()])
        if self.dist.main:
            # log first: a kill between the two leaves a log that reaches at least the checkpoint's step
            atomic_write_text(self.out / LOG_NAME, "".join(json.dumps(r) + "\n" for r in self.log_rows))
            save_checkpoint(self._payload(), self.checkpoint_path)
        self.dist.barrier()
        self.timer.save_s = time.perf_counter() - t0

    def plot(self) -> None:
        from hwnas.plots import training_curve

        t0 = time.perf_counter()
        training_curve(self.log_rows, self.out / PLOT_NAME, title=f"supernet {self.space.name}")
        self.timer.plot_s = time.perf_counter() - t0

    def try_resume(self) -> bool:
        from hwnas.checkpoint import check_resumable, check_space, load_checkpoint, restore_rng

        path = self.checkpoint_path
        if not path.exists():
            return False
        ckpt = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
        check_space(ckpt, self.space, path)
        check_resumable(ckpt, path)
        old = ckpt.get("config", {})
        changed = changed_settings(old, self.cfg)  # which settings count, and within what tolerance
        check_identity({k: old[k] for k in changed}, {k: getattr(self.cfg, k) for k in changed},
                       f"supernet checkpoint {path}")
        if ckpt.get("world_size", 1) != self.dist.world_size:
            raise CheckpointError(f"{path} was trained with {ckpt.get('world_size')} processes, "
                                  f"this run has {self.dist.world_size}; resume with the same number")
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.total_steps = ckpt["total_steps"]
        if self.budget is not None:
            self.budget.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.elapsed_s = float(ckpt["elapsed_s"])
        restore_rng(ckpt["rng"])
        self.log_rows = load_log(self.out / LOG_NAME, self.step)
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

    def set_lr_factor(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * factor

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        """One optimizer step at the learning rate set with :meth:`set_lr_factor`."""
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
        sampler = StepBatches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, self.dist.rank,
                              self.dist.world_size, start, end)
        return torch.utils.data.DataLoader(
            EpochKeyed(self.dataset), batch_sampler=sampler, num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )

    def _budget_step(self) -> tuple[float, bool]:
        """(fraction of the budget spent now, whether the next step is the last), as rank 0 sees it.

        The last step is the one predicted to end within half a step of the time left once the
        final checkpoint and plot are paid for; a step that overran makes the next one the last.
        """
        step_s = self.timer.next_step_s()
        left_s = self.budget_s - self.timer.closing_s() - self.elapsed_s
        spent, last = self.elapsed_s / self.budget_s, float(left_s <= 1.5 * step_s)
        spent, last = self.dist.broadcast_floats([spent, last])  # every rank runs the same steps and LRs
        return spent, bool(last)

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()
        if self.dist.main:
            atomic_write_text(self.out / CONFIG_NAME, json.dumps({**cfg.to_dict(), "space_hash": self.space.hash,
                                                                  "world_size": self.dist.world_size}, indent=2) + "\n")
        if self.budget is not None and self.dist.main:
            import hwnas.plots  # noqa: F401  (pays matplotlib's import now, inside the budget, not at the end)

            hwnas.plots.pyplot()
        self.elapsed_s += time.perf_counter() - self._t_start  # set-up (and resume) time counts too
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and self.dist.main),
                   desc=f"supernet {self.space.name}", unit="step", dynamic_ncols=True)
        if resumed and self.dist.main:
            print(f"resumed from {self.checkpoint_path} at step {self.step}", file=sys.stderr, flush=True)
        finished = self.total_steps is not None and self.step >= self.total_steps
        try:
            if not finished:
                self._train_loop(bar)
        finally:
            bar.close()
        t_close = time.perf_counter()
        self.save()
        if self.dist.main:
            self.plot()
        self.elapsed_s += time.perf_counter() - t_close
        summary = {
            "space": self.space.name,
            "space_hash": self.space.hash,
            "steps": self.step,
            "total_steps": self.total_steps,
            "elapsed_s": round(self.elapsed_s, 2),
            "world_size": self.dist.world_size,
            "threads": torch.get_num_threads(),
            "threads_probe_s": {str(k): round(v, 4) for k, v in self.threads_probe_s.items()},  # --threads auto
            "final_loss_largest": self.log_rows[-1]["loss_largest"] if self.log_rows else None,
            "final_lr": self.log_rows[-1]["lr"] if self.log_rows else None,
            "stop": "done",
            "checkpoint": str(self.checkpoint_path),
        }
        if self.budget_s is not None:
            summary["budget_s"] = self.budget_s
        if self.dist.enabled:
            # consistency check of the gradient averaging: every rank must end with the same state
            digests = self.dist.gather_objects(state_digest(self.net))
            summary["rank_state_sha256"] = digests
            if len(set(digests)) != 1:
                raise RuntimeError(f"ranks diverged: state digests {digests}")
        if self.dist.main:
            atomic_write_text(self.out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        return summary

    def _train_loop(self, bar) -> None:
        cfg = self.cfg
        end = self.total_steps if self.total_steps is not None else _ENDLESS
        t_last = time.perf_counter()
        for images, masks in self._loader(self.step, end):
            last = False
            if self.budget is not None:
                spent, last = self._budget_step()
                self.set_lr_factor(self.budget.factor(self.step, spent, last))
            else:
                self.set_lr_factor(poly_factor(self.step, self.total_steps, cfg.warmup_steps, cfg.poly_power))
            row = self.train_step(images, masks)
            now = time.perf_counter()
            # wall time per step includes loading its batch; checkpoint time is added separately
            dt = now - t_last
            self.timer.add_step(dt)
            self.elapsed_s += dt
            self.step += 1
            row["elapsed_s"] = round(self.elapsed_s, 3)
            row["step_s"] = round(dt, 4)
            row["loadavg_1m"] = os.getloadavg()[0]  # the CPU may be shared: keep timings honest
            self.log_rows.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", res=row["resolution"], lr=f"{row['lr']:.2e}")
            if last:
                self.total_steps = self.step  # the budget's schedule is complete: the run is done
            # a budgeted run checkpoints after its first step too: that measures what saving costs
            first_budget_save = self.budget is not None and self.timer.save_s is None
            if self.step % cfg.save_every == 0 or self.step == self.total_steps or first_budget_save:
                self.save()
                self.elapsed_s += self.timer.save_s
                if first_budget_save and self.dist.main:
                    self.plot()  # likewise for the curve (rewritten at the end)
                    self.elapsed_s += self.timer.plot_s
            if self.step == self.total_steps:
                break
            t_last = time.perf_counter()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a supernet; returns a summary dict. Cleans up the process group."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.dist.close()
