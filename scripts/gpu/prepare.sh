#!/usr/bin/env bash
# Prepare, on a machine with a network, what scripts/gpu/run.sh needs on a GPU machine
# that has CUDA, python3 and torch but reaches no network: DVC as wheels for Python 3.12,
# and the fetch stage's two tarballs as the data source. Everything goes into .gpu/
# (gitignored, about 46 MB), which travels with the working tree to the GPU machine.
#
#   make install && dvc repro extract   # the tarballs in data/raw
#   bash scripts/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.tools/bin/python}
DVC_VERSION=$(sed -n 's/^dvc==\([0-9.]*\).*/\1/p' <(.tools/bin/uv export --frozen --no-hashes))
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/raw
cp data/raw/mnist_train.tar.gz data/raw/mnist_test.tar.gz .gpu/raw/
# antlr4-python3-runtime (through hydra-core) is published as a source archive only
"$PYTHON" -m pip wheel --quiet --no-deps antlr4-python3-runtime==4.9.3 -w .gpu/wheels
platforms=()
for tag in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_27_x86_64 \
	manylinux_2_28_x86_64 manylinux_2_34_x86_64 any; do platforms+=(--platform "$tag"); done
"$PYTHON" -m pip download --quiet --only-binary=:all: --python-version 3.12 \
	--implementation cp "${platforms[@]}" --find-links .gpu/wheels -d .gpu/wheels \
	"dvc==$DVC_VERSION"
du -sh .gpu
