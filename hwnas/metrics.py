"""SOD metrics through PySODMetrics (``py_sod_metrics``): MAE, max F-measure (beta^2 = 0.3),
S-measure, max E-measure.

The library expects ``uint8`` maps in 0..255: it binarises the ground truth at ``> 128`` and
min-max normalises each prediction, then sweeps 256 thresholds for the F and E curves. This
wrapper converts float maps in [0, 1] to that form, so every caller scores the same way.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("max_f", "mae", "s_measure", "max_e")


def to_uint8(x) -> np.ndarray:
    """A map as ``uint8`` 0..255: ``uint8`` passes through, floats are taken to lie in [0, 1]."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool:
        return x.astype(np.uint8) * 255
    return np.clip(np.rint(x.astype(np.float64) * 255), 0, 255).astype(np.uint8)


class SODMetrics:
    """Accumulates per-image scores; :meth:`results` returns ``max_f``, ``mae``, ``s_measure``, ``max_e``."""

    def __init__(self):
        import py_sod_metrics as psm

        self._f = psm.FmeasureV2(
            metric_handlers={"fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)}
        )
        self._mae = psm.MAE()
        self._s = psm.Smeasure()
        self._e = psm.Emeasure()
        self.count = 0

    def update(self, pred, gt) -> None:
        """One image: ``pred`` and ``gt`` of the same ``(H, W)`` shape, uint8 0..255 or float in [0, 1]."""
        p, g = to_uint8(pred), to_uint8(gt)
        p, g = np.squeeze(p), np.squeeze(g)
        if p.shape != g.shape or p.ndim != 2:
            raise ValueError(f"prediction {p.shape} and ground truth {g.shape} must be the same 2-D shape")
        for m in (self._f, self._mae, self._s, self._e):
            m.step(pred=p, gt=g)
        self.count += 1

    def results(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no images were scored")
        return {
            "max_f": float(np.max(self._f.get_results()["fm"]["dynamic"])),
            "mae": float(self._mae.get_results()["mae"]),
            "s_measure": float(self._s.get_results()["sm"]),
            # the library's E curve can exceed 1 by ~1e-3 (its 256-bin histogram); clip to the metric's range
            "max_e": float(min(1.0, np.max(self._e.get_results()["em"]["curve"]))),
            "images": self.count,
        }


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per model, one column per metric."""
    head = f"{'model':32s} {'max-F':>7s} {'MAE':>7s} {'S-m':>7s} {'max-E':>7s} {'images':>7s}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:32s} {r['max_f']:7.4f} {r['mae']:7.4f} {r['s_measure']:7.4f} {r['max_e']:7.4f} "
                     f"{int(r.get('images', 0)):7d}")
    return "\n".join(lines)
