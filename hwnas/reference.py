"""A search space's own model as the drift reference of its latency tables (``lut.reference``).

A table's costs are ratios to a reference timed in the same window, so a prediction is only as
good as the reference's tracking of the models it predicts. For sub-ms models that live in the
caches (inas-tiny at 64 px), the small convolution stack of ``lut.reference`` does not slow as
they do: over 8 minutes on an Intel Xeon host the models' raw medians moved 2.35x (max / min),
their ratio to that stack 1.37x, their ratio to one fixed whole model of the space 1.10x
(``bench/reference_candidates.py``). That model is named by the space's identity and the arch's
compact string, so any process that can build the space rebuilds the same reference from a
table's metadata; its weights are seeded.
"""

from __future__ import annotations

import random

PREFIX = "space-model:"
ARCH_SEED = 12345  # draws the reference arch (bench/reference_candidates.py --ref-seed): fixed, not tuned
# A cost cap, not a tuned threshold: the reference gets >= 50 timed runs in every block window
# (the build's protocol; 100 when the cap was set), so a reference of 50 MMAC (~5 ms at 10 GMAC/s,
# one core) adds ~0.25 s to each window. The spaces measured sit far on either side: inas-tiny's
# reference 4.5 MMAC at 64 px, 10.1 at 96 px (sub-ms models, where it was validated); inas-sod's
# 1838 MMAC at 320 px, which would make a 928-block build spend hours timing the reference.
MAX_MACS = 50_000_000


def space_model_reference(space, resolution: int) -> str | None:
    """The reference name of ``space`` at ``resolution``: one arch drawn with a fixed seed; None where
    no name rebuilds the space (:func:`rebuild_spec`)."""
    spec = rebuild_spec(space)
    if spec is None:
        return None
    arch = space.sample(random.Random(ARCH_SEED), resolution=resolution)
    # hash first and the space's spec last: a derived space's spec may hold ':' (``inas-tiny:cells=…``)
    return f"{PREFIX}{space.hash}:{arch.to_string()}@{spec}"


def rebuild_spec(space) -> str | None:
    """What :func:`hwnas.space.create` takes to rebuild ``space`` in another process: its name where
    that is a built-in space of this definition, else what it was made from (a YAML file by absolute
    path; ``NAME:TYPE=...``); None where neither gives this definition. A user's YAML space is not
    known by its name: a reference named by it could not be rebuilt, and the build failed."""
    from pathlib import Path

    from hwnas.space import create

    source = space.source
    if source.endswith((".yaml", ".yml")):
        source = str(Path(source).resolve())
    for spec in (space.name, source):
        try:
            if create(spec).hash == space.hash:
                return spec
        except Exception:  # noqa: BLE001  a probe: any failure to rebuild means "not by this spec"
            continue
    return None


def affordable(name: str) -> bool:
    """Whether the ``space-model:`` reference ``name`` is cheap enough to time in every window
    (:data:`MAX_MACS`)."""
    from lut.footprint import model_macs

    module, inputs = build_reference(name[len(PREFIX):])
    return model_macs(module, inputs) <= MAX_MACS


def build_reference(rest: str):
    """(module, example inputs) of a ``space-model:`` reference; refuses a space whose definition
    changed since the table recorded it."""
    import torch

    from hwnas.arch import load_arch
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.errors import LUTError

    digest, sep, tail = rest.partition(":")
    arch_text, at, name = tail.partition("@")  # an arch's compact string holds no '@'
    if not (sep and at and arch_text and name):
        raise LUTError(f"reference {PREFIX}{rest!r}: expected {PREFIX}<space hash>:<arch>@<space>")
    space = create(name)
    if space.hash != digest:
        raise LUTError(f"reference model of space {name!r} was recorded for definition {digest}, this one is "
                       f"{space.hash}: rebuild the table with this space")
    arch = load_arch(arch_text)
    space.validate(arch)
    torch.manual_seed(0)
    r = arch.resolution
    return for_export(SODNet(space, arch)).eval(), (torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0)),)


def register() -> None:
    from lut.reference import register_resolver

    register_resolver(PREFIX, build_reference)


register()
