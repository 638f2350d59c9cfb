"""Supernet training with the sandwich rule and in-place distillation (``hwnas supernet train``).

Sandwich rule (BigNAS, Yu et al. ECCV 2020; used by iNAS, thesis §3.3): every step runs the
largest subnet, the smallest and ``num_random`` uniformly sampled ones on the same batch,
accumulates their gradients and takes one optimizer step. The largest learns from the masks (BCE
on all 5 deep-supervision outputs); the others learn from the largest's *detached* finest
prediction (in-place distillation as in BigNAS/OFA): by default BCE with the teacher's
probabilities as soft targets on all 5 of their outputs (``student_loss="mse"`` uses MSE between
probabilities instead). Adam, linear warm-up then poly decay, multi-scale inputs (one of the
space's resolutions per step, shared by the four subnets so the teacher's map fits the students').
With ``--minutes`` the decay follows the fraction of the wall-clock budget spent
(:mod:`~hwnas.supernet_training.schedule`), so a run ends on time with its schedule finished.

Determinism and resumption: everything random in a step — resolution, sampled subnets, data
order, augmentation — is a function of ``(seed, step)`` (data: ``(seed, epoch, index)``), so a run
restarted from a checkpoint after ``kill -9`` continues with exactly the losses an uninterrupted
run would have produced (a budgeted run's learning rates follow the clock, so only its data and
subnets repeat exactly). Checkpoints (model, optimizer, scheduler, step, RNG states, space
name+hash, config) are written atomically every ``save_every`` steps and at the end.

Multi-process (``torchrun --nproc_per_node N -m hwnas supernet train ...``; gloo on CPU, NCCL on
GPU): the four forward passes of a step use *different sub-graphs* of the same parameters, which
DDP's reducer (one bucket schedule per graph, "unused parameter" bookkeeping, one allreduce per
backward) handles badly. Instead every rank samples the *same* subnets (same seeded RNG), reads its
own shard of the batch (the deterministic sampler in ``sampler``, as ``DistributedSampler`` would), runs the
four backward passes locally, and then gradients are averaged once with a single
``all_reduce`` over a flat buffer before the optimizer step. That is exactly data-parallel SGD on
the sandwich loss, with one communication per step. BN running statistics are local to each rank
during training and averaged across ranks before every checkpoint, so all ranks save identical
state (they are re-estimated per subnet before evaluation anyway).

Modules: ``config`` (settings, file names, what a resume may change), ``schedule`` (learning rate),
``sampler`` (deterministic batches), ``losses``, ``trainer`` (the loop); the process group is
:mod:`hwnas.process_group`, the curve plot :mod:`hwnas.plots`.
"""

from hwnas.supernet_training.config import TrainConfig
from hwnas.supernet_training.schedule import poly_factor
from hwnas.supernet_training.trainer import Trainer, state_digest, train

__all__ = ["TrainConfig", "Trainer", "poly_factor", "state_digest", "train"]
