#!/usr/bin/env bash
# max_attempts A/B on inas-tiny (ORT 1 thread, 64 px): A = 2 (the earlier default), B = 1 (now), A again; each validated on the same 12 models
set -u
cd /work/main
H=.venv/bin/hwnas
for tag in a2 b1 a2r; do
  case $tag in a2|a2r) extra=(--max-attempts 2);; *) extra=();; esac
  t0=$(date +%s)
  $H lut build --space inas-tiny --backend onnxruntime-cpu --threads 1 --resolutions 64 --no-progress "${extra[@]}" -o runs/s44/tiny-$tag.parquet
  t1=$(date +%s)
  $H lut validate --lut runs/s44/tiny-$tag.parquet --n 12 --seed 441 --exporter torchscript --out-dir runs/s44/val-tiny-$tag > runs/s44/val-tiny-$tag.txt 2>&1
  echo "$tag build_s=$((t1-t0)) validate_s=$(( $(date +%s)-t1 ))"
done
