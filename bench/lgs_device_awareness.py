"""Device awareness with two or more device tables: ``bench/device_awareness.py`` under its former
output name (``bench/results/lgs_device_awareness.{json,md,png}``); same arguments.

    .venv/bin/python bench/lgs_device_awareness.py --supernet runs/train_tiny_450/supernet.pt \\
        --data runs/bench_synth/val --calib runs/bench_synth/train \\
        --lut ort1=/tmp/luts/tiny-ort1.parquet --lut xnnpack1=/tmp/luts/tiny-xnn1.parquet --work-dir runs/device_awareness
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_awareness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_name="lgs_device_awareness"))
