"""Supernet checkpoints: atomic writes, safe loads, search-space identity.

A checkpoint is a plain dict of tensors and primitives (``torch.load(..., weights_only=True)``
reads it, so loading never runs pickled code):

``format``, ``version``, ``space`` (name, hash, config), ``model`` (supernet state dict),
``optimizer``, ``scheduler``, ``step``, ``epoch``, ``rng`` (python, numpy, torch [, cuda] states),
``config`` (the training config), ``elapsed_s``, ``total_steps``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.fileio import atomic_path, first_line
from hwnas.errors import CheckpointError

FORMAT = "hwnas-supernet"
VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (``deploy.fileio.atomic_path``), so a kill at any
    moment leaves either the previous checkpoint or the new one, never a torn file; a full disk is
    reported as such (``OSError``), not as torch's "unexpected pos"."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


# what `supernet train` needs besides the weights to continue a run exactly
RESUME_KEYS = {"optimizer": dict, "scheduler": dict, "scaler": dict, "total_steps": (int, type(None)), "step": int,
               "elapsed_s": (int, float), "rng": dict}


def torch_load_safely(path: str | Path, map_location: str | torch.device = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line refusals naming ``path``.

    A file that needs more than tensors and plain data to unpickle is refused as unsafe, without
    repeating torch's advice on how to load it anyway: hwnas never runs code from a file.
    """
    import re

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a {what} file")
    if not path.exists():
        raise CheckpointError(f"{path}: {what} file does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise  # the CLI names the path and the cause (permission, I/O error)
    except Exception as e:  # noqa: BLE001 — any unpickling failure means "not a readable checkpoint"
        text = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if unsafe:
            raise CheckpointError(f"{path}: refused: the {what} holds Python objects other than tensors and plain "
                                  f"data (it references {unsafe.group(1)}); hwnas loads only weights-only files and "
                                  "never runs code from one") from None
        if "Weights only load failed" in text:  # no pickle torch.save wrote (text, another format)
            raise CheckpointError(f"{path}: not a readable {what} (not a file written by torch.save)") from None
        first = first_line(e)
        raise CheckpointError(f"{path}: not a readable {what} ({first[:200]})") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    The structure is checked here, once: ``space`` (name, hash, config) and ``model`` (tensors by
    name); a missing or mistyped field is named. A run that resumes also calls :func:`check_resumable`.
    """
    path = Path(path)
    data = torch_load_safely(path, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an hwnas supernet checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')} is not supported (expected {VERSION})")
    space = data.get("space")
    if not isinstance(space, dict) or not all(isinstance(space.get(k), t) for k, t in
                                              (("name", str), ("hash", str), ("config", dict))):
        raise CheckpointError(f"{path}: damaged checkpoint: 'space' must hold name, hash and config")
    model = data.get("model")
    if not isinstance(model, dict) or not model or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise CheckpointError(f"{path}: damaged checkpoint: 'model' must map parameter names to tensors")
    return data


def check_resumable(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> None:
    """:class:`CheckpointError` naming the first of :data:`RESUME_KEYS` that is missing or mistyped."""
    for key, kind in RESUME_KEYS.items():
        value = ckpt.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{path}: damaged checkpoint: {key!r} is missing or not a "
                                  f"{getattr(kind, '__name__', 'number')}; it cannot resume a run "
                                  "(move it away to start afresh)")


def space_record(space) -> dict[str, Any]:
    return {"name": space.name, "hash": space.hash, "config": space.config}


def check_space(ckpt: dict[str, Any], space, path: str | Path = "checkpoint") -> None:
    """:class:`CheckpointError` naming both spaces when ``ckpt`` was trained on another space."""
    rec = ckpt.get("space", {})
    if rec.get("hash") != space.hash:
        raise CheckpointError(
            f"{path} was trained on space {rec.get('name')!r} (hash {rec.get('hash')}), "
            f"not on {space.name!r} (hash {space.hash})"
        )


def checkpoint_space(ckpt: dict[str, Any]):
    """The :class:`~hwnas.space.SearchSpace` a checkpoint was trained on, rebuilt from its stored definition."""
    from hwnas.space import SearchSpace

    rec = ckpt["space"]
    return SearchSpace(rec["config"], source=f"<checkpoint: {rec['name']}>")


def load_supernet(path: str | Path, space=None, map_location: str | torch.device = "cpu"):
    """The trained :class:`~hwnas.supernet.Supernet` of a checkpoint, in eval mode.

    ``space`` (a :class:`SearchSpace` or a name/YAML path) is checked against the checkpoint's;
    without it the space stored in the checkpoint is used.
    """
    from hwnas.space import create
    from hwnas.supernet import Supernet

    ckpt = load_checkpoint(path, map_location)
    if space is None:
        space = checkpoint_space(ckpt)
    elif isinstance(space, (str, Path)):
        space = create(str(space))
    check_space(ckpt, space, path)
    net = Supernet(space)
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the supernet of {space.name}: {first_line(e)}") from None
    return net.eval()


# ---------------------------------------------------------------------------------- RNG state
def capture_rng() -> dict[str, Any]:
    """Python, NumPy (global) and torch RNG states as weights-only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
