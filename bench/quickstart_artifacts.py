"""Run the quickstart's exported artifacts outside hwnas: ONNX Runtime and the ExecuTorch runtime only.

    python bench/quickstart_artifacts.py [--run runs/quickstart] [--images 32]

Deliberately imports nothing from hwnas, profilers, lut or deploy: it reads ``manifest.json``,
preprocesses held-out images exactly as the manifest says, runs ``model.onnx`` in ONNX Runtime and
``model.pte`` in ExecuTorch, and reports (a) how far the two runtimes' outputs are apart, next to
the parity the export reported against PyTorch, and (b) each runtime's MAE against the masks.
Writes bench/results/quickstart_artifacts.json; exits 1 if the runtimes disagree beyond the
manifest's parity tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def preprocess(path: Path, size: int, norm: dict) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quickstart_artifacts.json"))
    args = ap.parse_args()
    run = Path(args.run)
    export = run / "export"
    manifest = json.loads((export / "manifest.json").read_text())
    (inp,) = manifest["inputs"]
    size = inp["shape"][-1]
    files = {a["format"]: a for a in manifest["artifacts"]}

    import onnxruntime as ort
    import torch  # the ExecuTorch Python runtime takes torch tensors
    from executorch.runtime import Runtime

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(export / files["onnx"]["file"]), opts, providers=["CPUExecutionProvider"])
    method = Runtime.get().load_program(str(export / files["executorch"]["file"])).load_method("forward")

    images = sorted((run / "data" / "val" / "images").glob("*"))[: args.images]
    masks = run / "data" / "val" / "masks"
    diffs, mae = [], {"onnxruntime": [], "executorch": []}
    for path in images:
        x = preprocess(path, size, inp["normalisation"])
        y_ort = session.run(None, {session.get_inputs()[0].name: x})[0]
        y_et = method.execute([torch.from_numpy(x)])[0].numpy()
        diffs.append(float(np.abs(y_ort - y_et).max()))
        gt = np.asarray(Image.open(masks / (path.stem + ".png")).convert("L").resize((size, size), Image.NEAREST)) > 128
        for name, y in (("onnxruntime", y_ort), ("executorch", y_et)):
            mae[name].append(float(np.abs(y[0, 0] - gt).mean()))

    tolerance = min(files[f]["parity"]["tolerance"] for f in ("onnx", "executorch"))
    result = {
        "run": str(run),
        "images": len(images),
        "max_abs_diff_onnxruntime_vs_executorch": max(diffs),
        "reported_parity_vs_pytorch": {f: files[f]["parity"]["max_abs_diff"] for f in ("onnx", "executorch")},
        "tolerance": tolerance,
        "mae_vs_masks": {k: float(np.mean(v)) for k, v in mae.items()},
        "versions": {"onnxruntime": ort.__version__},
    }
    result["consistent"] = result["max_abs_diff_onnxruntime_vs_executorch"] <= tolerance
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
