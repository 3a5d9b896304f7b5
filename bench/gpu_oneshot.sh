#!/usr/bin/env bash
# GPU figures in one device call (issue 16): `human` and `pro` at 1080p and 4K, batch 1/4/8, fp32/fp16,
# session and network alone, peak GPU memory, and whole jobs end to end (PyAV decode, no NVDEC).
#
# Here, from a clean checkout with ../shared beside it (fetches the wheels the GPU image lacks, copies
# the weights, sha256-checked, and 48 DAVIS frames; about 58 MiB, under the 64 MiB a device call carries):
#     bash bench/gpu_oneshot.sh prepare
# On the lent machine (its python3 holds a CUDA torch; nothing can be fetched there):
#     run(command="bash bench/gpu_oneshot.sh run", carry=[".whl", ".gpu"], timeout_s=420)
# The tables land in $OUT/bench_gpu.md; paste them into docs/BENCHMARKS.md.
# The same run through the local stack cannot travel in the same call: PyAV (35 MB) and SeaweedFS
# (48 MB) together are over the 64 MiB a call carries (docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
# what the GPU image lacks (python 3.12 there); the versions the registry serves today
WHEELS="av pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv tqdm"

case "${1:-}" in
prepare)
    rm -rf .whl .gpu && mkdir -p .whl .gpu/parkour/frames
    for w in $WHEELS; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$w"
    done
    [ -x .venv/bin/python ] || make venv  # the weights' sha256 check uses the project's code
    .venv/bin/python scripts/setup_models.py --dest .gpu/models --source "$SHARED/models"
    rm -f .gpu/models/selfie_segmentation.onnx  # not measured here; keeps the carry small
    ls "$SHARED"/media/gt/davis2016/parkour/frames/*.jpg | head -48 | xargs -I{} cp {} .gpu/parkour/frames/
    du -sh .whl .gpu
    ;;
run)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
    out=${OUT:-/tmp}/bench_gpu.md
    python3 bench/bench_gpu.py --model-dir .gpu/models --clip .gpu/parkour --models human,pro \
        --sizes 1920x1080,3840x2160 --batches 1,4,8 --precisions fp32,fp16 --frames 48 --end-to-end | tee "$out"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
