"""Bad invocations of every ``hwnas`` subcommand end in one line on stderr and exit code 2.

A table of what a new user gets wrong, run in-process through :func:`hwnas.cli.main` (fast) and
a few as real processes. Every case must exit 2, write exactly one line to stderr (starting with
``hwnas`` and naming what is wrong), and no traceback. Classes:

* ``types``: a value of the wrong type or an unknown choice/option (``--steps abc``);
* ``ranges``: a number or list out of its range (``--batch-size 0``, ``--lr nan``, ``cuda:7``);
* ``files``: a missing file, a directory where a file is expected, a file of the wrong kind;
* ``os_errors``: an output the machine refuses (under a regular file, in ``/proc``, read-only);
* ``damaged``: a file of the right kind with wrong content (space YAML, arch, genotype,
  checkpoint, table metadata);
* ``misuse``: valid values that do not make sense together (too few calibration models, masks
  of another size than their images, an unsafe checkpoint, a checkpoint of another space).

Hypothesis drives the text parsers a user feeds (arch strings, arch JSON, space YAML and raw
space-file bytes, genotype JSON):
whatever the text, they return a value or raise the package's one-line error.

Run ``pytest tests/test_bad_inputs.py -s`` to see the count of invocations per class.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hwnas.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "hwnas" / "spaces" / "inas-tiny.yaml").read_text())
RESULTS: Counter = Counter()  # (class, ok) -> count, reported by test_report_counts


def _space_yaml(folder: Path, name: str, edit) -> str:
    cfg = copy.deepcopy(TINY)
    edit(cfg)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _set(path: tuple, value):
    def edit(cfg):
        d = cfg
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


class _Evil:
    """Unpickling this would call print: a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("a pickle ran code",))


@pytest.fixture(scope="module")
def F(tmp_path_factory):
    """Every file the bad invocations point at (built once)."""
    from hwnas.checkpoint import save_checkpoint, space_record
    from hwnas.space import create
    from hwnas.supernet import Supernet
    from lut.table import COLUMNS, LatencyTable

    d = tmp_path_factory.mktemp("bad_inputs")
    tiny = create("inas-tiny")
    f = {"d": str(d)}
    # plain files and folders
    (d / "regular").write_text("a regular file\n")
    f["regular"] = str(d / "regular")
    (d / "folder").mkdir()
    f["folder"] = str(d / "folder")
    (d / "folder.yaml").mkdir()
    f["folder_yaml"] = str(d / "folder.yaml")
    (d / "binary").write_bytes(bytes(range(256)) * 4)
    f["binary"] = str(d / "binary")
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01" * 64)
    f["binary_yaml"] = str(d / "binary.yaml")
    (d / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    f["binary_json"] = str(d / "binary.json")
    f["missing"] = str(d / "missing")
    # data: a good pair folder and one whose mask is another size than its image
    for name, mask_hw in (("data", (16, 16)), ("mismatch", (8, 16))):
        (d / name / "images").mkdir(parents=True)
        (d / name / "masks").mkdir()
        for stem in ("a", "b"):
            Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(d / name / "images" / f"{stem}.png")
            Image.fromarray(np.full(mask_hw, 255, np.uint8)).save(d / name / "masks" / f"{stem}.png")
        f[name] = str(d / name)
    # checkpoints: good, without 'model', garbage bytes, an unsafe pickle, another space's
    f["ckpt"] = str(save_checkpoint({"space": space_record(tiny), "model": Supernet(tiny).state_dict()}, d / "tiny.pt"))
    f["ckpt_no_model"] = str(save_checkpoint({"space": space_record(tiny)}, d / "no_model.pt"))
    f["ckpt_bad_model"] = str(save_checkpoint({"space": space_record(tiny), "model": {"w": 3}}, d / "bad_model.pt"))
    (d / "garbage.pt").write_bytes(b"PK\x03\x04 this is not a torch file" * 10)
    f["ckpt_garbage"] = str(d / "garbage.pt")
    torch.save({"format": "hwnas-supernet", "version": 1, "model": _Evil()}, d / "unsafe.pt")
    f["ckpt_unsafe"] = str(d / "unsafe.pt")
    # latency tables: a readable one (few rows) and ones whose metadata is damaged
    meta = {"space": {"name": tiny.name, "hash": tiny.hash}, "backend": {"name": "onnxruntime-cpu", "settings": {}},
            "device": {}, "protocol": {}, "resolutions": [64]}
    row = {c: None for c in COLUMNS}
    row.update(key="stem r64 c8", kind="stem", median_ms=0.1)
    f["lut"] = str(LatencyTable([row], meta).write(d / "t.parquet"))
    import pyarrow.parquet as pq

    table = pq.read_table(f["lut"])
    for name, raw in (("lut_not_json", b"{not json"), ("lut_list", b"[1, 2]"),
                      ("lut_no_space", json.dumps({"format": 1, "backend": {"name": "x"}}).encode()),
                      ("lut_bad_cal", json.dumps({**meta, "format": 1, "calibration": {"kind": "affine", "a": "x"}}).encode())):
        pq.write_table(table.replace_schema_metadata({b"hwnas.lut": raw}), d / f"{name}.parquet")
        f[name] = str(d / f"{name}.parquet")
    pq.write_table(table.replace_schema_metadata({}), d / "lut_no_meta.parquet")
    f["lut_no_meta"] = str(d / "lut_no_meta.parquet")
    # search spaces with one bad field each (issue 15's list), and other damaged YAML
    for name, edit in {
        "stride0": _set(("stages", 1, "stride"), 0),
        "empty_kernels": _set(("stages", 2, "kernel_sizes"), []),
        "neg_width": _set(("stages", 2, "widths"), [-16, 24]),
        "zero_expand": _set(("stages", 2, "expand_ratio"), 0),
        "even_kernel": _set(("stages", 2, "kernel_sizes"), [3, 4]),
        "zero_res": _set(("resolutions",), [0, 64]),
        "float_width": _set(("stages", 2, "widths"), [64.5]),
        "str_depth": _set(("stages", 2, "depths"), ["2"]),
        "kernel_11": _set(("head", "decoder_kernel_sizes"), [3, 11]),
        "head_4": _set(("head", "channels"), [8, 12, 16, 24]),
        "typo_key": _set(("stages", 2, "kernel_size"), [3]),
        "bool_stride": _set(("stem", "stride"), True),
        "se_nan": _set(("se_ratio",), float("nan")),
        "stages_none": _set(("stages",), None),
    }.items():
        f[f"space_{name}"] = _space_yaml(d, name, edit)
    (d / "not_mapping.yaml").write_text("- a\n- b\n")
    f["space_not_mapping"] = str(d / "not_mapping.yaml")
    (d / "invalid.yaml").write_text("name: x\nresolutions: [64\n")
    f["space_invalid"] = str(d / "invalid.yaml")
    # architectures and genotypes
    (d / "arch_bad.json").write_text(json.dumps({"resolution": 64, "stem_width": 8}))
    f["arch_bad_json"] = str(d / "arch_bad.json")
    (d / "geno_bad_op.json").write_text(json.dumps({"format": "hwnas-cell-genotype/1", "normal": [[["conv_99x99", 0]]],
                                                   "reduce": [[["skip_connect", 0]]]}))
    f["geno_bad_op"] = str(d / "geno_bad_op.json")
    (d / "geno_bad_meta.json").write_text(json.dumps({"format": "hwnas-cell-genotype/1", "normal": [[["skip_connect", 0]]],
                                                     "reduce": [[["skip_connect", 0]]], "meta": [1]}))
    f["geno_bad_meta"] = str(d / "geno_bad_meta.json")
    f["smallest"] = create("inas-tiny").smallest().to_string()
    return f


# (class, argv, regex the one stderr line must match); {name} is a path from F
CASES = [
    # --------------------------------------------------------------------------------- types
    ("types", "supernet train --space inas-tiny --data {data} --out {d}/r --steps abc", r"--steps: expected an integer"),
    ("types", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --lr fast", r"--lr: expected a number"),
    ("types", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --device gpu", r"--device: unknown device 'gpu'"),
    ("types", "space sample inas-tiny --seed 1.5", r"--seed: expected an integer"),
    ("types", "space sample inas-tiny --format yaml", r"--format: invalid choice"),
    ("types", "data synth --out {d}/s --n ten", r"--n: expected an integer"),
    ("types", "eval --supernet {ckpt} --arch largest --data {data} --device garbage", r"unknown device 'garbage'.*auto, cpu, cuda"),
    ("types", "baseline ft --data {data} --size big", r"--size: expected an integer"),
    ("types", "export --space inas-tiny --arch smallest --out {d}/e --seed x", r"--seed: expected an integer"),
    ("types", "profilers measure --largest --runs 5.5", r"--runs: expected an integer"),
    ("types", "lut build --space inas-tiny --out {d}/l.parquet --resolutions 64,abc", r"--resolutions: expected an integer"),
    ("types", "lut show {lut} --rows x", r"--rows: expected an integer"),
    ("types", "lut calibrate --lut {lut} --kind quadratic", r"--kind: invalid choice"),
    ("types", "search --supernet {ckpt} --lut {lut} --data {data} --calib {data} --out {d}/s --population 1e3",
     r"--population: expected an integer"),
    ("types", "search --supernet {ckpt} --lut {lut} --data {data} --calib {data} --out {d}/s --metric accuracy",
     r"--metric: invalid choice"),
    ("types", "cells search --method dots --out {d}/c --epochs two", r"--epochs: expected an integer"),
    ("types", "cells train --genotype {geno_bad_op} --device cuda:x", r"unknown device 'cuda:x'"),
    ("types", "quickstart --out {d}/q --train-minutes five", r"--train-minutes: expected a number"),
    ("types", "nosuch", r"invalid choice: 'nosuch'"),
    ("types", "space list --bogus", r"unrecognized arguments: --bogus"),
    ("types", "supernet train --space inas-tiny --data {data} --steps 1", r"required: --out"),
    ("types", "space", r"required: ACTION"),
    # --------------------------------------------------------------------------------- ranges
    ("ranges", "eval --supernet {ckpt} --arch largest --data {data} --batch-size 0", r"--batch-size: expected an integer >= 1"),
    ("ranges", "eval --supernet {ckpt} --arch largest --data {data} --calib-batches 0", r"--calib-batches"),
    ("ranges", "eval --supernet {ckpt} --arch largest --data {data} --device cuda:7", r"device 'cuda:7'"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --lr nan", r"--lr: expected a finite number"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --lr inf", r"--lr: expected a finite number"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --lr -0.1", r"--lr: expected a number > 0"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 0", r"--steps: expected an integer >= 1"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --minutes 0", r"--minutes: expected a number > 0"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --epochs -1", r"--epochs"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --workers -1", r"--workers: expected an integer >= 0"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --threads 0", r"--threads"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --grad-clip -1", r"--grad-clip"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --weight-decay nan", r"--weight-decay"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --resolutions 64,0", r"--resolutions"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --device cuda:7", r"device 'cuda:7'"),
    ("ranges", "supernet train --space inas-tiny --data {data} --out {d}/r --steps 1 --batch-size -2", r"--batch-size"),
    ("ranges", "profilers info --threads -1", r"--threads: expected an integer >= 1"),
    ("ranges", "lut build --space inas-tiny --out {d}/l.parquet --threads 0", r"--threads"),
    ("ranges", "lut build --space inas-tiny --out {d}/l.parquet --resolutions ,", r"--resolutions: expected comma-separated"),
    ("ranges", "lut build --space inas-tiny --out {d}/l.parquet --resolutions 65", r"\[65\] not in space inas-tiny; allowed: \[64, 96\]"),
    ("ranges", "lut build --space inas-tiny --out {d}/l.parquet --min-time-s -1", r"--min-time-s"),
    ("ranges", "lut validate --lut {lut} --calibrate -1", r"--calibrate: expected an integer >= 0"),
    ("ranges", "lut validate --lut {lut} --n 1", r"--n must be >= 2"),
    ("ranges", "lut show {lut} --rows -3", r"--rows"),
    ("ranges", "lut validate --lut {lut} --shard 3/2", r"--shard: need 1 <= I <= K"),
    ("types", "lut validate --lut {lut} --shard a/b", r"--shard: expected I/K"),
    ("ranges", "data synth --out {d}/s --n 10 --workers -1", r"--workers: expected an integer >= 1"),
    ("ranges", "data synth --out {d}/s --n 0", r"--n: expected an integer >= 1"),
    ("ranges", "data synth --out {d}/s --n 10 --val-fraction 1", r"--val-fraction: expected a number in \[0, 1\)"),
    ("ranges", "data synth --out {d}/s --n 10 --size 0", r"--size"),
    ("ranges", "space sample inas-tiny --n 0", r"--n: expected an integer >= 1"),
    ("ranges", "space sample inas-tiny --resolution 63", r"--resolution 63 not in space inas-tiny"),
    ("ranges", "cells search --method dots --out {d}/c --max-samples 0", r"--max-samples: expected an integer >= 1"),
    ("ranges", "cells search --method dots --out {d}/c --lr nan", r"--lr"),
    ("ranges", "cells train --genotype {geno_bad_op} --batch-size 0", r"--batch-size"),
    ("ranges", "search --supernet {ckpt} --lut {lut} --data {data} --calib {data} --out {d}/s --crossover-prob 1.5",
     r"--crossover-prob: expected a number in \[0, 1\]"),
    ("ranges", "search --supernet {ckpt} --lut {lut} --data {data} --calib {data} --out {d}/s --workers 0", r"--workers"),
    ("ranges", "search --supernet {ckpt} --lut {lut} --data {data} --calib {data} --out {d}/s --max-latency-ms -1",
     r"--max-latency-ms"),
    ("ranges", "quickstart --out {d}/q --images 0", r"--images"),
    ("ranges", "quickstart --out {d}/q --population -5", r"--population"),
    ("ranges", "export --space inas-tiny --arch smallest --out {d}/e --calib-batches 0", r"--calib-batches"),
    ("ranges", "baseline ft --data {data} --size -1", r"--size"),
    ("ranges", "profilers measure --smallest --resolution 0", r"--resolution"),
    # --------------------------------------------------------------------------------- files
    ("files", "space show {missing}.yaml", r"cannot read search space file .*missing\.yaml: No such file"),
    ("files", "space show {folder_yaml}", r"folder\.yaml: Is a directory"),
    ("files", "space show {binary_yaml}", r"not a text \(UTF-8 YAML\) file"),
    ("files", "space validate inas-tiny {missing}.json", r"architecture file not found"),
    ("files", "space validate inas-tiny {folder}", r"folder is a directory"),
    ("files", "space validate inas-tiny {binary_json}", r"not a text \(JSON\) file"),
    ("files", "supernet info {missing}.pt", r"checkpoint file does not exist"),
    ("files", "supernet info {folder}", r"is a directory, not a checkpoint"),
    ("files", "eval --supernet {folder} --arch largest --data {data}", r"is a directory, not a checkpoint"),
    ("files", "lut show {missing}.parquet", r"does not exist"),
    ("files", "lut show {folder}", r"is a directory, not a \.parquet"),
    ("files", "lut show {regular}", r"not readable Parquet"),
    ("files", "lut predict --lut {folder} --arch smallest", r"is a directory"),
    ("files", "cells train --genotype {folder}", r"is a directory"),
    ("files", "cells train --genotype {missing}.json", r"does not exist"),
    ("files", "cells train --genotype {binary_json}", r"not a text \(JSON\) file"),
    ("files", "data check {missing}", r"missing"),
    ("files", "baseline ft --data {missing}", r"missing"),
    ("files", "export --space inas-tiny --arch {missing}.json --out {d}/e", r"architecture file not found"),
    ("files", "profilers measure --arch {missing}.json", r"architecture file not found"),
    ("files", "search --supernet {missing}.pt --lut {lut} --data {data} --calib {data} --out {d}/s", r"does not exist"),
    ("files", "supernet train --space {missing}.yaml --data {data} --out {d}/r --steps 1", r"No such file"),
    ("files", "search --supernet {ckpt} --lut {folder} --data {data} --calib {data} --out {d}/s", r"is a directory"),
    ("files", "lut build --space inas-tiny --out {folder}", r"--out .*folder is a directory"),
    ("files", "supernet info {lut}", r"not a readable checkpoint \(not a file written by torch\.save\)"),
    ("files", "eval --supernet {ckpt} --arch {binary} --data {data}", r"not a text \(JSON\) file"),
    ("files", "data check {regular}", r"dataset folder does not exist"),
    ("files", "cells search --method dots --data cifar10:{missing} --out {d}/c", r"CIFAR folder .* does not exist"),
    ("files", "lut merge {folder} --out {d}/m.parquet", r"folder is a directory"),
    ("files", "lut merge {missing}.jsonl --out {d}/m.parquet", r"does not exist"),
    ("files", "export --space inas-tiny --arch smallest --supernet {folder} --out {d}/e", r"is a directory"),
    # ------------------------------------------------------------------------------ OS errors
    ("os_errors", "data synth --out {regular}/s --n 10", r"regular: is a file where a directory is needed"),
    ("os_errors", "cells random --out {regular}/g.json", r"regular: is a file where a directory is needed"),
    ("os_errors", "lut build --space inas-tiny --out {regular}/t.parquet --no-progress", r"regular: is a file where a directory"),
    ("os_errors", "quickstart --out {regular}/q", r"regular: is a file where a directory is needed"),
    ("os_errors", "supernet train --space inas-tiny --data {data} --out {regular}/r --steps 1 --batch-size 1", r"regular: is a file where"),
    ("os_errors", "export --space inas-tiny --arch smallest --formats onnx --out {regular}/e", r"regular: is a file where"),
    ("os_errors", "cells random --out /proc/hwnas-bad-inputs/g.json", r"/proc/hwnas-bad-inputs"),
    ("os_errors", "search --synthetic --space inas-tiny --out {regular}/s --population 8 --groups 2 --keep 4 --iterations 1",
     r"regular: is a file where a directory is needed"),
    ("os_errors", "search --synthetic --space inas-tiny --out /proc/hwnas-bad-inputs --population 8 --groups 2 --keep 4",
     r"/proc/hwnas-bad-inputs"),
    ("os_errors", "data synth --out /proc/hwnas-bad-inputs --n 10", r"/proc/hwnas-bad-inputs"),
    ("os_errors", "lut build --space inas-tiny --out /proc/hwnas-bad-inputs/t.parquet --no-progress", r"/proc/hwnas-bad-inputs"),
    ("os_errors", "data synth --out /sys/fs/hwnas-bad-inputs --n 10", r"/sys/fs/hwnas-bad-inputs: (Operation not permitted|Read-only|Permission denied)"),
    ("os_errors", "cells random --out /proc/version", r"/proc/"),  # names the temp file beside it, for now
    # ------------------------------------------------------------------------------- damaged
    *[("damaged", f"space show {{space_{name}}}", match) for name, match in (
        ("stride0", r"stages\[2\]\.stride: must be >= 1, got 0"),
        ("empty_kernels", r"stages\[3\]\.kernel_sizes: expected a non-empty list"),
        ("neg_width", r"stages\[3\]\.widths: must be >= 1, got entry -16"),
        ("zero_expand", r"stages\[3\]\.expand_ratio: must be >= 1"),
        ("even_kernel", r"stages\[3\]\.kernel_sizes: kernel size 4 not allowed; allowed: \[1, 3, 5, 7, 9\]"),
        ("zero_res", r"resolutions: must be >= 1, got entry 0"),
        ("float_width", r"stages\[3\]\.widths: expected integers >= 1, got entry 64\.5"),
        ("str_depth", r"stages\[3\]\.depths: expected integers >= 1, got entry '2'"),
        ("kernel_11", r"head\.decoder_kernel_sizes: kernel size 11 not allowed"),
        ("head_4", r"head\.channels: expected 5 entries"),
        ("typo_key", r"stages\[3\]: unknown key\(s\) \['kernel_size'\]"),
        ("bool_stride", r"stem\.stride: expected integers? >= 1, got True"),
        ("se_nan", r"se_ratio: expected a number in \[0, 1\)"),
        ("stages_none", r"stages: expected a non-empty list of stages"),
        ("not_mapping", r"expected a mapping at the top level"),
        ("invalid", r"is not valid YAML"),
    )],
    ("damaged", "supernet train --space {space_stride0} --data {data} --out {d}/r --steps 1", r"stages\[2\]\.stride"),
    ("damaged", "lut build --space {space_even_kernel} --out {d}/l.parquet", r"kernel size 4 not allowed"),
    ("damaged", "space validate inas-tiny r64_c8_b[8:3]", r"does not match"),
    ("damaged", "space validate inas-tiny r64_c8_b[x:3]_t[1:3]_d[1:3]", r"width 'x' is not a number"),
    ("damaged", "space validate inas-tiny {arch_bad_json}", r"missing field\(s\) \['decoder', 'stages', 'transport'\]"),
    ("damaged", "space validate inas-tiny [1,2]", r"expected a JSON object"),
    ("damaged", "space validate inas-tiny {{\"resolution\":", r"architecture JSON is malformed"),
    ("damaged", "supernet info {ckpt_no_model}", r"damaged checkpoint: 'model' must map parameter names to tensors"),
    ("damaged", "supernet info {ckpt_bad_model}", r"damaged checkpoint: 'model'"),
    ("damaged", "supernet info {ckpt_garbage}", r"not a readable checkpoint"),
    ("damaged", "eval --supernet {ckpt_no_model} --arch largest --data {data}", r"damaged checkpoint"),
    ("damaged", "search --supernet {ckpt_no_model} --lut {lut} --data {data} --calib {data} --out {d}/s", r"damaged checkpoint"),
    ("damaged", "lut show {lut_not_json}", r"hwnas\.lut metadata is not JSON"),
    ("damaged", "lut show {lut_list}", r"not a JSON object"),
    ("damaged", "lut show {lut_no_space}", r"'space' must be an object with string name, hash"),
    ("damaged", "lut show {lut_bad_cal}", r"'calibration' must be an object"),
    ("damaged", "lut show {lut_no_meta}", r"without hwnas\.lut metadata"),
    ("damaged", "cells train --genotype {geno_bad_op}", r"op 'conv_99x99' not allowed"),
    ("damaged", "cells train --genotype {geno_bad_meta}", r"'meta' must be an object"),
    ("damaged", "space show inas-tiny:cells={binary_json}", r"not a text \(JSON\) file"),
    ("damaged", "space show inas-tiny:cells={geno_bad_op}:channels=-4", r"channels|not allowed"),
    # --------------------------------------------------------------------------------- misuse
    ("misuse", "lut calibrate --lut {lut} --n 3 --kind affine+count", r"--n 3: calibration kind affine\+count needs >= 12"),
    ("misuse", "lut validate --lut {lut} --calibrate 2", r"--calibrate 2: calibration kind auto needs >= 3"),
    ("misuse", "lut validate --lut {lut} --calibrate 0 --save-calibration", r"--save-calibration needs calibration models"),
    ("misuse", "supernet train --space inas-tiny --data {mismatch} --out {d}/r --steps 1", r"image is 16x16 but its mask .* is 16x8"),
    ("misuse", "data check {mismatch}", r"image is 16x16 but its mask"),
    ("misuse", "supernet info {ckpt_unsafe}", r"refused: .*never runs code"),
    ("misuse", "eval --supernet {ckpt_unsafe} --arch largest --data {data}", r"refused"),
    ("misuse", "eval --space inas-sod --supernet {ckpt} --arch largest --data {data}", r"trained on space 'inas-tiny'"),
    ("misuse", "eval --supernet {ckpt} --arch r999_c8_b[]_t[]_d[] --data {data}", r"transport level 1: expected 'levels:kernels'"),
    ("misuse", "export --space inas-tiny --arch smallest --calib {data} --out {d}/e", r"--calib .* needs --supernet"),
    ("misuse", "lut predict --lut {lut} --arch r64_c8_b[8:3]_t[1:3]_d[1:3]", r"does not match|not allowed|stages"),
    ("misuse", "data check", r"give a dataset folder"),
    ("misuse", "baseline ft", r"give --data"),
    ("misuse", "supernet train --space inas-tiny --out {d}/r --steps 1", r"give --data"),
    ("misuse", "space sample inas-tny", r"did you mean 'inas-tiny'"),
    ("misuse", "search --supernet {ckpt_unsafe} --lut {lut} --data {data} --calib {data} --out {d}/s", r"refused"),
    ("misuse", "cells search --method dots --option edges=weird --out {d}/c --max-samples 8 --epochs 1", r"allowed: two, any"),
    ("misuse", "cells search --method darts --option nonexistent=1 --out {d}/c --max-samples 8", r"unknown option"),
    ("misuse", "export --space inas-tiny --arch smallest --formats , --out {d}/e", r"no export format given"),
    ("misuse", "supernet train --space inas-tiny --images {data}/images --out {d}/r --steps 1", r"give both --images and --masks"),
    ("types", "profilers measure --backend nosuch --largest", r"unknown backend 'nosuch'"),
    ("types", "export --space inas-tiny --arch smallest --formats xyz --out {d}/e", r"unknown export format 'xyz'"),
    ("types", "cells search --method nosuch --out {d}/c", r"unknown cell-search method"),
    ("ranges", "baseline ft --data {data} --size 4", r"image size must be >= 8"),
    ("damaged", "space show inas-tiny:cells={geno_bad_op}:channels=x", r"channels must be an integer, got 'x'"),
]


def _argv(template: str, f: dict) -> list[str]:
    return [part.format(**f) for part in template.split()]


def _skip_reason(argv: list[str]) -> str | None:
    joined = " ".join(argv)
    if "cuda" in joined and torch.cuda.is_available() and ("cuda:7" not in joined or torch.cuda.device_count() > 7):
        return "this machine has the GPU the case pretends is missing"
    if "/proc/" in joined and not Path("/proc/version").exists():
        return "no /proc here"
    if "/sys/fs/" in joined and not Path("/sys/fs").is_dir():
        return "no /sys/fs here"
    return None


def _check_one_line(rc: int, err: str, pattern: str, argv) -> tuple[bool, str]:
    lines = [line for line in err.splitlines() if line.strip()]
    ok = (rc == 2 and len(lines) == 1 and "Traceback" not in err and lines[0].startswith("hwnas")
          and "error" in lines[0] and re.search(pattern, lines[0]) is not None)
    return ok, f"argv={argv}\nrc={rc}\nstderr:\n{err}"


@pytest.mark.parametrize("kind,template,pattern", CASES, ids=[f"{c[0]}:{c[1][:60]}" for c in CASES])
def test_bad_invocation(F, capsys, kind, template, pattern):
    argv = _argv(template, F)
    reason = _skip_reason(argv)
    if reason:
        pytest.skip(reason)
    rc = main(argv)
    captured = capsys.readouterr()
    ok, detail = _check_one_line(rc, captured.err, pattern, argv)
    RESULTS[kind, ok] += 1
    assert ok, detail
    assert "weights_only=False" not in captured.err and "add_safe_globals" not in captured.err


# a few as real processes: what a shell user sees (exit status, stderr), interpreter start included
SUBPROCESS_CASES = [
    ("types", "eval --supernet {ckpt} --arch largest --data {data} --device garbage", r"unknown device 'garbage'"),
    ("damaged", "space show {space_float_width}", r"got entry 64\.5"),
    ("misuse", "supernet info {ckpt_unsafe}", r"refused"),
]


@pytest.mark.parametrize("kind,template,pattern", SUBPROCESS_CASES, ids=[c[1][:50] for c in SUBPROCESS_CASES])
def test_bad_invocation_in_a_real_process(F, kind, template, pattern):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = _argv(template, F)
    p = subprocess.run([sys.executable, "-m", "hwnas", *argv], capture_output=True, text=True, env=env, timeout=120)
    ok, detail = _check_one_line(p.returncode, p.stderr, pattern, argv)
    RESULTS[kind, ok] += 1
    assert ok, detail


def test_user_error_types_are_the_packages_exceptions():
    """The CLI catches each package's error by (module, class) name: every name resolves."""
    import importlib

    from hwnas.cli import USER_ERRORS

    for module, name in USER_ERRORS:
        assert issubclass(getattr(importlib.import_module(module), name), Exception)


def test_a_reader_that_stops_early_is_not_an_error():
    """`hwnas space sample ... | head -1`: no traceback, no error line; exit 141 like shell tools."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-m", "hwnas", "space", "sample", "inas-tiny", "--n", "20000", "--format", "string"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline().startswith(b"r")
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err


def test_read_only_and_permission_errors_name_the_path(tmp_path, capsys):
    """A folder the user may not write: one line naming the path (root writes anywhere: skipped)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop writes here")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        rc = main(["cells", "random", "--out", str(locked / "g.json")])
        ok, detail = _check_one_line(rc, capsys.readouterr().err, r"locked.*[Pp]ermission denied", "cells random")
        RESULTS["os_errors", ok] += 1
        assert ok, detail
    finally:
        locked.chmod(0o755)


def test_device_spec_against_the_gpus_present(monkeypatch):
    """The checked --device type with 0 and 1 GPUs (no GPU is needed: the count is what it asks)."""
    from hwnas import devices
    from hwnas.errors import HwnasError

    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    assert devices.check_device_spec("cpu") == "cpu" and str(devices.resolve_device("auto")) == "cpu"
    with pytest.raises(HwnasError, match="no CUDA GPU is available here"):
        devices.check_device_spec("cuda")
    monkeypatch.setattr(devices, "_cuda_count", lambda: 1)
    assert devices.check_device_spec("cuda:0") == "cuda:0"
    assert str(devices.resolve_device("auto")) == "cuda" and str(devices.resolve_device("cuda", local_rank=0)) == "cuda:0"
    with pytest.raises(HwnasError, match=r"device 'cuda:1': this machine has 1 CUDA GPU\(s\), cuda:0\.\.cuda:0"):
        devices.check_device_spec("cuda:1")
    for bad in ("gpu", "cuda:", "cuda:-1", "cuda0", "CPU", ""):
        with pytest.raises(HwnasError, match="allowed: auto, cpu, cuda, cuda:N"):
            devices.check_device_spec(bad)


# ----------------------------------------------------------------------------- parsers (hypothesis)
ARCH_ALPHABET = "rcbtd_[]|:.0123456789 x-"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(alphabet=ARCH_ALPHABET, max_size=60),
                 st.text(max_size=40),
                 st.builds(lambda a, b: a + b, st.sampled_from(["r64_c8_b[", "r64_c8_b[8:3|12:3]_t[", "{", "["]),
                           st.text(alphabet=ARCH_ALPHABET + '{}",', max_size=40))))
def test_arch_text_parser_returns_or_refuses(text):
    from hwnas.arch import load_arch
    from hwnas.errors import ArchError
    from hwnas.space import create

    space = create("inas-tiny")
    try:
        arch = load_arch(text)
    except ArchError as e:
        assert "\n" not in str(e)
        return
    try:
        space.validate(arch)
    except ArchError as e:
        assert "\n" not in str(e)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 400) | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
                    max_leaves=25)
ARCH_KEYS = ("resolution", "stem_width", "stages", "transport", "decoder", "width", "kernel_sizes", "inputs")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(ARCH_KEYS), JSON, max_size=6)),
       st.sampled_from(["resolution", "stem_width", "stages", "transport", "decoder"]))
def test_arch_json_parser_returns_or_refuses(value, field):
    """Random JSON, and a real architecture with one field replaced by random JSON."""
    from hwnas.arch import Arch
    from hwnas.errors import ArchError
    from hwnas.space import create

    space = create("inas-tiny")
    real = space.smallest().to_dict()
    for candidate in (value, {**real, field: value}):
        try:
            space.validate(Arch.from_json(json.dumps(candidate)))
        except ArchError as e:
            assert "\n" not in str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON, st.sampled_from(["normal", "reduce", "meta", "steps", "format"]))
def test_genotype_json_parser_returns_or_refuses(value, field):
    """Random JSON, and a real genotype with one field replaced by random JSON."""
    from hwnas.cells.genotype import Genotype, random_genotype
    from hwnas.errors import ArchError

    real = random_genotype(0).to_dict()
    for candidate in (value, {**real, field: value}):
        try:
            g = Genotype.from_json(json.dumps(candidate))
        except ArchError as e:
            assert "\n" not in str(e)
        else:
            assert Genotype.from_json(g.to_json()) == g


SPACE_FIELDS = [("resolutions",), ("stem", "widths"), ("stem", "stride"), ("stem", "kernel_size"), ("se_ratio",),
                ("stages", 0, "stride"), ("stages", 2, "widths"), ("stages", 2, "depths"), ("stages", 2, "kernel_sizes"),
                ("stages", 3, "expand_ratio"), ("stages", 4), ("stages",), ("head", "level_stages"), ("head", "channels"),
                ("head", "transport_kernel_sizes"), ("name",), ("head",), ("backbone",)]
VALUES = st.one_of(st.integers(-3, 130), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                   st.text(max_size=4), st.lists(st.integers(-2, 12), max_size=4),
                   st.lists(st.one_of(st.integers(1, 9), st.floats(0, 9), st.text(max_size=2)), max_size=3),
                   st.dictionaries(st.text(max_size=8), st.integers(-1, 9), max_size=3))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(SPACE_FIELDS), VALUES), min_size=1, max_size=3), st.integers(0, 2**16))
def test_space_yaml_parser_returns_or_refuses(edits, seed):
    """inas-tiny with random fields replaced, through YAML: a space that loads samples valid
    architectures and enumerates its blocks; one that does not is refused as SpaceError."""
    from hwnas.errors import SpaceError
    from hwnas.space import SearchSpace

    cfg = copy.deepcopy(TINY)
    for path, value in edits:
        try:
            _set(path, value)(cfg)
        except (TypeError, KeyError, IndexError):  # an earlier edit replaced this field's parent
            pass
    text = yaml.safe_dump(cfg)
    try:
        space = SearchSpace(yaml.safe_load(text), source="fuzz.yaml")
    except SpaceError as e:
        assert "\n" not in str(e)
        return
    arch = space.sample(seed)
    space.validate(arch)
    assert space.blocks(arch) and space.blocks(space.largest()) and space.blocks(space.smallest())
    assuming_same = SearchSpace(json.loads(json.dumps(space.config)), source="again")
    assert assuming_same.hash == space.hash


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_space_file_bytes_return_or_refuse(tmp_path_factory, data):
    from hwnas.errors import SpaceError
    from hwnas.space import SearchSpace

    path = tmp_path_factory.mktemp("fuzz", numbered=True) / "space.yaml"
    path.write_bytes(data)
    try:
        SearchSpace.from_yaml(path)
    except SpaceError as e:
        assert "\n" not in str(e)


def test_calibration_refuses_an_order_inverting_fit():
    """The table ranks these models against their measurements: any affine fit (a > 0) keeps the
    raw-sum order, so it predicts the model measured at 2.2 ms faster than the one at 1.4 ms."""
    from lut.calibrate import fit
    from lut.errors import LUTError

    raw = [1.0, 1.2, 1.4, 1.6, 1.8]
    measured = [1.0, 2.2, 1.2, 1.4, 1.6]  # model 2: slow in reality, fast in the table
    with pytest.raises(LUTError, match=r"ranks a model measured at 2\.2 ms faster than one measured at 1\.[0-9]+ ms"):
        fit(raw, measured, kind="affine")
    assert fit(raw, [1.1, 1.3, 1.5, 1.7, 1.9], kind="affine")["a"] == pytest.approx(1.0)


def test_report_counts():
    """Bad invocations tried by class (run with -s to see); every class has cases and none failed."""
    total = Counter()
    failed = Counter()
    for (kind, ok), n in RESULTS.items():
        total[kind] += n
        if not ok:
            failed[kind] += n
    print("\nbad invocations by class:", dict(sorted(total.items())), "total", sum(total.values()),
          "| not one line + exit 2:", sum(failed.values()))
    if not RESULTS:
        pytest.skip("run together with the invocation tests")
    assert {"types", "ranges", "files", "os_errors", "damaged", "misuse"} <= set(total)
    assert not failed, dict(failed)
