"""The web console in a real browser: headless Chromium (Debian's `chromium` package) driven by Playwright,
against the whole local stack. Upload a real clip, trim it, pick a colour, submit, watch the progress bar,
play the result, download it; a bad URL shows its error code; the key stays in sessionStorage and travels
as a header.

Screenshots of each step go to a temporary folder, or to $VBG_CONSOLE_SCREENSHOTS when set (the committed
ones in docs/console/ are made so: `VBG_CONSOLE_SCREENSHOTS=docs/console make test-e2e PYTEST_ARGS="-k
console"`). Chromium must be installed (`apt-get install chromium`; `.ci/run` does it on a fresh machine):
without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import FileServer, Stack
from tests.mediacheck import summarize
from videobg.errors import ERROR_TABLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = os.environ.get("VBG_CHROMIUM", "/usr/bin/chromium")
CLIP = "people/sam2_01_dog.mp4"  # 1280x720, 9.7 s, AAC: trimmed to 3 s below
TRIM_END_S = 3.0
MODEL = "human"
JOB_TIMEOUT_MS = 300_000  # a loaded 2-core machine: 90 frames of `human` take ~10 s when it is quiet
UPLOAD_BYTES_PER_S = 400_000  # throttled, so the upload's progress is seen (and photographed) mid-way

# The test watches the page as a user would: the progress bars' values, recorded by a MutationObserver as
# the page sets them (not by sampling, which could miss a short job's steps).
RECORD_PROGRESS = """() => {
  window.__seen = {"upload-progress": [], "job-progress": []};
  for (const id of Object.keys(window.__seen)) {
    const bar = document.getElementById(id);
    new MutationObserver(() => window.__seen[id].push(Number(bar.value)))
      .observe(bar, {attributes: true, attributeFilter: ["value"]});
  }
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found: .ci/run installs the chromium package")
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI"):
            raise  # a dev dependency: `make setup` installs it
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        # Playwright's own browser download cannot run here; the system Chromium is driven instead.
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("VBG_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def problems() -> list[str]:
    """Script errors and Content-Security-Policy violations the page reported."""
    return []


@pytest.fixture
def page(browser, stack: Stack, problems: list[str]):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1000, "height": 760}, accept_downloads=True)
    pg = context.new_page()
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    response = pg.goto(stack.url + "/")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
    pg.wait_for_selector("input[name=model]")  # the script ran and rendered the model choices
    try:
        yield pg
    finally:
        context.close()


def job_id_of(page) -> str:  # type: ignore[no-untyped-def]
    return page.text_content("#job-id").strip()


def test_upload_trim_colour_submit_play_download(
    page, problems: list[str], stack: Stack, media: Path, shots: Path
) -> None:
    page.screenshot(path=str(shots / "1-empty.png"))
    page.evaluate(RECORD_PROGRESS)

    # slow the upload down so that its progress bar moves through intermediate values
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": UPLOAD_BYTES_PER_S},
    )
    page.set_input_files("#file", str(media / CLIP))
    page.wait_for_function("() => window.__seen['upload-progress'].some(v => v > 20 && v < 100)")
    page.locator("#source-card").screenshot(path=str(shots / "2-uploading.png"))
    page.wait_for_function("() => document.getElementById('upload-pct').textContent === 'uploaded'")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    # the source plays in the page, and its duration sets the trim scrubber
    page.wait_for_function("() => Number(document.getElementById('trim-end').max) > 9")

    page.fill("#trim-end-s", str(TRIM_END_S))
    page.dispatch_event("#trim-end-s", "change")
    page.check(f"input[name=model][value={MODEL}]")

    # transparent (the default) turns the formats without alpha off, and says why
    assert page.is_disabled("input[name=format][value=mp4]")
    assert "cannot carry transparency" in page.text_content("#format-note")
    page.fill("#bg-color", "#1e90ff")  # picking a colour selects the colour background
    assert page.is_checked("input[name=bg][value=color]")
    assert page.is_enabled("input[name=format][value=mp4]")
    assert page.is_checked("input[name=format][value=webm]")

    page.click("#submit")
    page.wait_for_function(
        "() => window.__seen['job-progress'].some(v => v > 5 && v < 100)", timeout=JOB_TIMEOUT_MS
    )
    page.wait_for_function(  # an estimate is shown once the rate is known (or the job ended first)
        "() => /ETA \\d/.test(document.getElementById('job-eta').textContent) || "
        "['completed', 'failed'].includes(document.getElementById('job-status').textContent)",
        timeout=JOB_TIMEOUT_MS,
    )
    page.screenshot(path=str(shots / "3-processing.png"))
    page.wait_for_function(
        "() => ['completed', 'failed', 'cancelled'].includes(document.getElementById('job-status').textContent)",
        timeout=JOB_TIMEOUT_MS,
    )
    assert page.text_content("#job-status") == "completed", page.text_content("#error")
    assert page.is_hidden("#error")

    seen = page.evaluate("() => window.__seen")
    uploads = [v for v in seen["upload-progress"] if 0 < v < 100]
    assert uploads, seen["upload-progress"]
    steps = sorted({v for v in seen["job-progress"] if 0 < v < 100})
    assert len(steps) >= 2, f"the progress bar jumped: {seen['job-progress']}"
    assert seen["job-progress"][-1] == 100

    # what the page sent: the API shows the trim, model, colour and format the form chose
    job = httpx.get(f"{stack.url}/v1/jobs/{job_id_of(page)}", timeout=10, trust_env=False).json()
    assert job["input"]["start"] == 0.0 and job["input"]["end"] == TRIM_END_S
    assert job["input"]["video_url"].startswith("asset://")
    assert job["model"] == MODEL and job["output_format"] == "webm"
    assert job["background"] == {"type": "color", "color": [30, 144, 255]}

    # the result plays, with the source following it in the before pane
    page.wait_for_function("() => document.getElementById('after').readyState >= 1")
    page.click("#play")
    page.wait_for_function(
        "() => { const a = document.getElementById('after'); return a.ended || a.currentTime >= 2.0; }",
        timeout=60_000,
    )
    after = page.evaluate(
        "() => { const a = document.getElementById('after'); return {err: a.error && a.error.code, "
        "duration: a.duration, muted: a.muted, before: document.getElementById('before').currentTime}; }"
    )
    assert after["err"] is None and abs(after["duration"] - TRIM_END_S) < 0.5, after
    assert after["before"] >= 1.0, after  # the before pane played along
    page.click("#play")  # pause
    page.locator("#result-card").screenshot(path=str(shots / "4-done-side-by-side.png"))
    page.click("#view-split")
    page.fill("#split", "24")
    clip = page.evaluate("() => document.getElementById('after-pane').style.clipPath")
    assert clip == "inset(0px 0px 0px 24%)", clip
    page.locator("#result-card").screenshot(path=str(shots / "5-done-split.png"))

    # the download link saves the result under a name; it decodes to the trimmed length
    with page.expect_download() as info:
        page.click("#download")
    saved = Path(info.value.path())
    assert info.value.suggested_filename.endswith(".webm"), info.value.suggested_filename
    result = summarize(saved)
    assert abs(result.duration_s - TRIM_END_S) < 0.2 and result.audio, result

    # the jobs list shows it, newest first; the usage box counts it
    page.click("#jobs-refresh")
    first = page.locator("#jobs-body tr").first
    first.wait_for()
    assert "completed" in first.text_content() and MODEL in first.text_content()
    assert "jobs" in page.text_content("#usage")
    page.locator("#jobs-card").screenshot(path=str(shots / "6-jobs.png"))
    assert not problems, problems


def test_bad_url_shows_error_code(
    page, problems: list[str], stack: Stack, files: FileServer, media: Path, shots: Path, tmp_path: Path
) -> None:
    # an upload the API refuses (an empty file): its code, and the form waits for another video
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    page.set_input_files("#file", str(empty))
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-code") == "invalid_parameter"
    assert page.text_content("#upload-pct") == "upload failed"
    assert page.is_disabled("#submit")

    # refused at submit: not an http(s) URL
    page.fill("#video-url", "ftp://example.com/clip.mp4")
    page.click("#url-form button")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-code") == "invalid_parameter"
    assert "video_url" in page.text_content("#error-message")
    assert page.is_hidden("#job-card")

    # a URL that answers 404: refused at submit or, when the submit probe cannot decide, failed where
    # ingest fetches it; either way the public code and message are what the API says
    page.fill("#video-url", files.url_for(media / "people" / "no-such-clip.mp4"))
    page.click("#url-form button")
    assert page.is_hidden("#error")  # a new video clears the old error
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])", timeout=JOB_TIMEOUT_MS)
    code, message = page.text_content("#error-code"), page.text_content("#error-message")
    if page.is_visible("#job-card"):
        job = httpx.get(f"{stack.url}/v1/jobs/{job_id_of(page)}", timeout=10, trust_env=False).json()
        assert job["status"] == "failed" and page.text_content("#job-status") == "failed", job
        assert (code, message) == (job["error"]["code"], job["error"]["message"])
    assert code in ERROR_TABLE and code != "internal_error", code
    assert "no-such-clip.mp4" in message, message
    assert "Traceback" not in page.content()
    page.screenshot(path=str(shots / "7-error.png"))
    assert not problems, problems


def test_key_in_session_storage_sent_as_header(page, stack: Stack) -> None:
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if "/v1/usage" in r.url else None)
    page.fill("#api-key", "vbg_nosuchkey_secret")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-code") == "invalid_auth_token"  # a key that is sent is checked
    assert page.evaluate("() => sessionStorage.getItem('videobg.apiKey')") == "vbg_nosuchkey_secret"
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""
    assert page.context.cookies() == []
    assert sent and sent[-1].get("x-api-key") == "vbg_nosuchkey_secret", sent
    page.click("#key-clear")
    page.wait_for_function("() => document.getElementById('key-state').textContent.includes('no key')")
    assert page.evaluate("() => sessionStorage.getItem('videobg.apiKey')") is None
    assert "x-api-key" not in sent[-1]


def test_console_does_not_shadow_the_api(stack: Stack) -> None:
    r = httpx.get(f"{stack.url}/v1/no-such-route", timeout=10, trust_env=False)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert "content-security-policy" not in r.headers
    r = httpx.get(f"{stack.url}/console/console.js", timeout=10, trust_env=False)
    assert r.status_code == 200 and "content-security-policy" in r.headers


def metered_key(stack: Stack, credits: float) -> str:
    """A key of a new owner with `credits`, made with the operator CLI (services/gateway/admin.py). A
    child process: Playwright's sync API holds this thread's event loop."""
    assert stack.nats is not None
    owner = f"console-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [sys.executable, "-m", "services.gateway.admin", "--nats-url", stack.nats.url, "--json"]
        + ["create-key", "--owner", owner, "--credits", str(credits)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return str(json.loads(out.stdout)["key"])


def use_key(page, key: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('key-state').textContent.startsWith('key ')")


def test_metered_key_transparent_gif_and_jobs_paging(
    page, problems: list[str], stack: Stack, media: Path
) -> None:
    """With a key of its own: the balance, a transparent GIF shown over a checkerboard, the charge in the
    usage box, and the jobs list of that owner only, paged 10 at a time."""
    key = metered_key(stack, credits=100.0)
    use_key(page, key)
    page.wait_for_function(
        "() => document.getElementById('usage').textContent.includes('balance 100 credits')"
    )
    page.wait_for_selector("text=No jobs yet.")

    # dropped on the drop zone, as a file dragged from the desktop (1.1 s, 720x1080)
    clip = media / "people/androidx_sample_portrait.mp4"
    dropped = page.evaluate_handle(
        """([name, b64]) => {
          const dt = new DataTransfer();
          dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {type: "video/mp4"}));
          return dt;
        }""",
        [clip.name, base64.b64encode(clip.read_bytes()).decode()],
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": dropped})
    assert "over" in (page.get_attribute("#drop", "class") or "")
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    assert clip.name in page.text_content("#upload-name")
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    page.check("input[name=model][value=light]")
    page.check("input[name=format][value=gif]")
    page.click("#submit")
    page.wait_for_function(
        "() => ['completed', 'failed', 'cancelled'].includes(document.getElementById('job-status').textContent)",
        timeout=JOB_TIMEOUT_MS,
    )
    assert page.text_content("#job-status") == "completed", page.text_content("#error")
    # a GIF is an image: shown in <img>, over the checkerboard that marks transparent pixels
    page.wait_for_function("() => document.getElementById('after-img').naturalWidth > 0")
    assert page.is_hidden("#after") and page.is_visible("#after-img")
    assert "checker" in (page.get_attribute("#after-pane", "class") or "")
    assert "does not play" not in page.text_content("#result-note")

    usage = httpx.get(f"{stack.url}/v1/usage", headers={"X-Api-Key": key}, timeout=10, trust_env=False).json()
    assert usage["credits"]["used"] > 0, usage
    used = float(usage["credits"]["used"])
    page.wait_for_function(  # as the page writes numbers: whole ones bare, others with 2 decimals
        "used => document.getElementById('usage').textContent.includes('used ' + used)",
        arg=str(int(used)) if used.is_integer() else f"{used:.2f}",
    )

    # paging: 11 drafts more (drafts cost nothing until started), newest first, 10 a page; each its own
    # URL, as the same body twice within a short window is taken for a retry (one job)
    for n in range(11):
        r = httpx.post(
            f"{stack.url}/v1/jobs",
            json={"video_url": f"https://example.com/clip-{n}.mp4", "auto_start": False},
            headers={"X-Api-Key": key},
            timeout=10,
            trust_env=False,
        )
        assert r.status_code == 200, r.text
    page.click("#jobs-refresh")
    rows = page.locator("#jobs-body tr")
    page.wait_for_function("() => document.querySelectorAll('#jobs-body tr').length === 10")
    assert all("draft" in rows.nth(i).text_content() for i in range(10))
    assert page.is_enabled("#jobs-older") and page.is_disabled("#jobs-newer")
    page.click("#jobs-older")
    page.wait_for_function("() => document.querySelectorAll('#jobs-body tr').length === 2")
    assert "draft" in rows.nth(0).text_content()
    assert "completed" in rows.nth(1).text_content() and "gif" in rows.nth(1).text_content()
    assert page.is_disabled("#jobs-older") and page.is_enabled("#jobs-newer")
    page.click("#jobs-newer")
    page.wait_for_function("() => document.querySelectorAll('#jobs-body tr').length === 10")
    assert not problems, problems


def test_image_background_by_upload_then_cancel(
    page, problems: list[str], stack: Stack, media: Path, shots: Path
) -> None:
    page.set_input_files("#file", str(media / CLIP))
    page.check("input[name=bg][value=image]")
    assert page.is_disabled("#submit")  # no image yet
    page.set_input_files("#bg-file", str(media / "people/bgmatting_0001_back.png"))
    page.wait_for_function("() => document.getElementById('bg-image-state').textContent.endsWith('uploaded')")
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    page.check("input[name=model][value=original]")  # the slowest on a CPU: still running when cancelled
    page.fill("#trim-end-s", "2")
    page.dispatch_event("#trim-end-s", "change")
    page.click("#submit")
    page.wait_for_function("() => document.getElementById('job-status').textContent === 'processing'")
    job_id = job_id_of(page)
    page.click("#cancel")
    page.wait_for_function(
        "() => ['completed', 'failed', 'cancelled'].includes(document.getElementById('job-status').textContent)",
        timeout=JOB_TIMEOUT_MS,
    )
    assert page.text_content("#job-status") == "cancelled"
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-code") == "cancelled"
    assert page.is_hidden("#result-card")
    job = httpx.get(f"{stack.url}/v1/jobs/{job_id}", timeout=10, trust_env=False).json()
    assert job["status"] == "cancelled" and job["model"] == "original", job
    assert job["background"]["type"] == "image" and job["background"]["image_url"].startswith("asset://")
    assert not problems, problems
