#!/usr/bin/env bash
# The pipeline on a GPU, measured: run on a machine with an NVIDIA GPU, from the repository
# root, after scripts/gpu/prepare.sh laid .gpu/ here. Writes into $OUT (default
# gpu-results/):
#   gpu.txt          the GPU, driver, CUDA and torch that ran
#   verify_repro.log `dvc repro -f` twice on CUDA, each stage timed on its own, and every
#                    output's sha256 from both runs (identical or not)
#   bench_train.log  an epoch of each model through train_model against its bare step
#   dmon.log         nvidia-smi utilisation, once a second, during all of it
#   dvc.lock, lenet5.json, mlp.json   what the second run wrote (provenance: the GPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
# DVC beside the machine's own torch; the project from src/
python3 -m venv --system-site-packages /tmp/gpu-env
/tmp/gpu-env/bin/pip install --quiet --no-index --find-links .gpu/wheels dvc
export PATH=/tmp/gpu-env/bin:$PATH PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
export MNIST_PIPELINE_DEVICE=${MNIST_PIPELINE_DEVICE:-cuda}
# dvc needs a git repository; the copy on the GPU machine may come without one
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	git init -q && git add -A && git -c user.name=gpu -c user.email=gpu@localhost commit -qm copy
fi
# no network there: the fetch stage reads the tarballs prepare.sh copied
sed -i "s|^  source: auto |  source: $PWD/.gpu/raw |" params.yaml
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
	python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name())'
} | tee "$OUT/gpu.txt"
nvidia-smi dmon -s u -d 1 -o T >"$OUT/dmon.log" 2>&1 &
dmon=$!
trap 'kill $dmon 2>/dev/null || true' EXIT
python3 scripts/verify_repro.py . --per-stage --json "$OUT/hashes.json" 2>"$OUT/repro-stderr.log" |
	tee "$OUT/verify_repro.log"
cp dvc.lock metrics/lenet5.json metrics/mlp.json "$OUT/"
python3 benchmarks/bench_train.py --repeats 3 2>&1 | tee "$OUT/bench_train.log"
