"""Reuse torch.export's list of preservable composite ops across exports in one process.

Every ``ExportedProgram.run_decompositions`` call asks ``torch._export.utils.
_collect_all_valid_cia_ops`` for the CompositeImplicitAutograd ops it may keep. That walks every
op namespace; torch caches only ``aten``'s answer, because a custom-op registration may add
entries to the dispatcher later. ExecuTorch's lowering calls ``run_decompositions`` three times
per artifact, so a LUT build that exports hundreds of small blocks spends a fifth of its export
time in that walk (inas-tiny blocks at 64 px: 9.2 of 50 profiled seconds; 4.5 → 3.8 s per block
and its context graph, measured interleaved).

:func:`cached_cia_ops` answers from a cache keyed by what the walk reads: the op namespaces
materialized in ``torch.ops``, the dispatcher's CompositeImplicitAutograd registrations and the
count of registered operators. A registration made between two exports changes the key, so the
walk runs again; the cache never answers for a dispatcher it did not see. Where torch no longer
has the function (another version), it does nothing.
"""

from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_cache: dict[tuple, frozenset] = {}
_MAX_KEYS = 8  # registrations only grow within a process: a handful of keys, each ~6000 ops


def _dispatcher_key() -> tuple:
    import torch

    cia = torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd")
    return tuple(torch.ops._dir), hash(frozenset(cia)), len(torch._C._dispatch_get_all_op_names())


def _cached(original):
    def collect_all_valid_cia_ops():
        key = _dispatcher_key()
        with _lock:
            found = _cache.get(key)
        if found is None:
            found = frozenset(original())
            with _lock:
                if len(_cache) >= _MAX_KEYS:
                    _cache.clear()
                _cache[key] = found
        return set(found)  # callers may mutate their copy, as they may torch's own answer

    return collect_all_valid_cia_ops


@contextlib.contextmanager
def cached_cia_ops():
    """Within this block, torch.export's walk over composite ops answers from the cache."""
    try:
        import torch._export.utils as export_utils
        import torch.export.exported_program as exported_program
    except ImportError:
        yield
        return
    modules = [m for m in (export_utils, exported_program) if hasattr(m, "_collect_all_valid_cia_ops")]
    has_key_api = all(hasattr(__import__("torch")._C, f) for f in (
        "_dispatch_get_registrations_for_dispatch_key", "_dispatch_get_all_op_names"))
    if export_utils not in modules or not has_key_api:
        yield
        return
    original = export_utils._collect_all_valid_cia_ops
    if getattr(original, "_hwnas_cached", False):  # nested: the outer block already patched it
        yield
        return
    patched = _cached(original)
    patched._hwnas_cached = True
    saved = {m: m._collect_all_valid_cia_ops for m in modules}
    for m in modules:
        m._collect_all_valid_cia_ops = patched
    try:
        yield
    finally:
        for m, fn in saved.items():
            m._collect_all_valid_cia_ops = fn
