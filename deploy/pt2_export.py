"""Export to a ``torch.export`` program (``.pt2``): what the PyTorch profilers ship to a remote host.

Not an end-user format (``deploy.export`` does not list it): the artifact is eager PyTorch's own
graph, used so that ``torch-cpu`` / ``torch-cuda`` measure the same way locally and over ssh.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError
from deploy.fileio import atomic_path, first_line


def export_pt2(model: nn.Module, example_inputs: tuple, path) -> Path:
    """``torch.export.export`` the eval-mode ``model`` and save the program at ``path``, atomically.
    Raises :class:`ExportError` starting ``pt2: ``."""
    path = Path(path)
    was_training = model.training
    try:
        with torch.no_grad():
            program = torch.export.export(model.eval(), tuple(example_inputs))
    except Exception as e:  # torch.export raises many types; name the cause
        raise ExportError(f"pt2: torch.export.export failed: {first_line(e, with_type=True)}") from e
    finally:
        model.train(was_training)
    with atomic_path(path) as staged:
        torch.export.save(program, str(staged))
    return path
