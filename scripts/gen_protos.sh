#!/usr/bin/env bash
# Regenerate the one package of generated code (vbg/v1) from protos/. `make protos` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
rm -f vbg/v1/*_pb2*.py vbg/v1/*_pb2*.pyi
$PY -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. protos/vbg/v1/*.proto
