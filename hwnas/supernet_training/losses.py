"""The sandwich rule's two losses: the largest subnet against the mask, the others against the largest."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
