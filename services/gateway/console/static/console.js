// videobg console: give a video, pick model/background/format, watch the job, compare before and after.
// Plain DOM code over api.js; no framework, nothing from another origin (the page's CSP forbids it).
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 750; // the job's status is polled; stages report progress every ~10 frames
const JOBS_PAGE = 10;
const SPLIT_HEIGHT_PX = 360; // .compare video's max-height in console.css
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STAGES = { ingest: "fetching and checking", segment: "matting", encode: "compositing and encoding", done: "done" };
// removebgvideo's output formats. alpha: can carry transparency; plays: a browser can preview it.
const FORMATS = [
  { value: "webm", label: "WebM (VP9)", alpha: true, plays: "video" },
  { value: "mp4", label: "MP4 (H.264)", alpha: false, plays: "video" },
  { value: "mov", label: "MOV (ProRes 4444 / H.265)", alpha: true, plays: "" },
  { value: "gif", label: "GIF", alpha: true, plays: "image" },
  { value: "webp", label: "animated WebP", alpha: true, plays: "image" },
  { value: "png_sequence", label: "PNG sequence (zip)", alpha: true, plays: "" },
];
const DEFAULT_FORMAT = "webm";
const EXTENSIONS = { webm: ".webm", mp4: ".mp4", mov: ".mov", gif: ".gif", webp: ".webp", png_sequence: ".zip" }; // alpha-capable and plays in every browser, Debian's Chromium included

const state = {
  source: null, // {url: "asset://..." or an http(s) URL, preview: blob URL or null, name}
  duration: 0, // of the source, once its metadata loaded (0: unknown)
  bgImage: "", // asset:// or URL of the background image
  job: null, // {id, trimStart, transparent, format, preview, t0}
  pollTimer: 0,
  clockTimer: 0,
  pages: [""], // cursors of the jobs pages seen; the last is the current page
  nextCursor: "",
};

// --- errors ------------------------------------------------------------------------------------------

function showError(err) {
  $("error-code").textContent = err.code || "error";
  $("error-message").textContent = err.message || "";
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

function guard(fn) {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (e) {
      showError(e instanceof api.ApiError ? e : new api.ApiError(0, "console_error", String(e.message || e)));
    }
  };
}

// --- key and usage ----------------------------------------------------------------------------------------

function initKey() {
  $("api-key").value = api.getKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    api.setKey($("api-key").value.trim());
    refreshAccount();
  });
  $("key-clear").addEventListener("click", () => {
    $("api-key").value = "";
    api.setKey("");
    refreshAccount();
  });
}

async function refreshUsage() {
  const box = $("usage");
  try {
    const u = await api.usage();
    $("key-state").textContent = u.metered ? `key ${u.key_id}` : api.getKey() ? "" : "no key (local stack)";
    const parts = [];
    if (u.credits) {
      parts.push(["balance", `${fmtNum(u.credits.balance)} credits`]);
      parts.push(["available", fmtNum(u.credits.available)]);
      parts.push(["used", fmtNum(u.credits.used)]);
    } else parts.push(["credits", "unmetered"]);
    parts.push(["jobs", String(u.jobs.total)]);
    parts.push(["billed", `${fmtNum(u.billed_seconds)} s`]);
    box.replaceChildren(...parts.map(([k, v]) => el("span", {}, [`${k} `, el("b", {}, [v])])));
    renderModels(u.credits_per_minute || {});
  } catch (e) {
    box.replaceChildren(el("span", { className: "muted" }, [`usage: ${e.code}`]));
    const refused = e.code === "invalid_auth_token";
    $("key-state").textContent = refused ? (api.getKey() ? "key refused" : "this gateway needs an API key") : "";
    if (e.code === "invalid_auth_token") showError(e);
  }
}

function refreshAccount() {
  hideError();
  refreshUsage();
  state.pages = [""];
  refreshJobs();
}

// --- source: upload or URL, preview, trim -------------------------------------------------------------------

function initSource() {
  const drop = $("drop");
  const file = $("file");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") file.click();
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) useFile(e.dataTransfer.files[0]);
  });
  file.addEventListener("change", () => {
    if (file.files.length) useFile(file.files[0]);
    file.value = "";
  });
  $("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const url = $("video-url").value.trim();
    if (url) useUrl(url);
  });
  const video = $("source-video");
  video.addEventListener("loadedmetadata", () => setDuration(video.duration));
  initTrim();
}

function resetSource() {
  if (state.source && state.source.preview) URL.revokeObjectURL(state.source.preview);
  state.source = null;
  state.duration = 0;
  $("source-video").removeAttribute("src");
  $("source-preview").hidden = true;
  $("source-note").hidden = true;
  updateSubmit();
}

const useFile = guard(async (file) => {
  hideError();
  resetSource();
  const preview = URL.createObjectURL(file);
  state.source = { url: "", preview, name: file.name };
  showPreview(preview);
  $("upload").hidden = false;
  $("upload-name").textContent = `${file.name} · ${fmtBytes(file.size)}`;
  setUploadProgress(0);
  updateSubmit("Uploading…");
  const mine = state.source;
  let asset;
  try {
    asset = await api.upload(file, setUploadProgress);
  } catch (e) {
    if (state.source === mine) {
      $("upload-pct").textContent = "upload failed";
      resetSource();
    }
    throw e; // shown with its code by guard()
  }
  if (state.source !== mine) return; // another video was given meanwhile
  mine.url = asset.asset_url || asset.url; // asset://<id>: names the upload whatever host serves the API
  $("upload-pct").textContent = "uploaded";
  updateSubmit();
});

function setUploadProgress(fraction) {
  const pct = Math.round(fraction * 100);
  $("upload-progress").value = pct;
  $("upload-pct").textContent = `${pct} %`;
}

const useUrl = guard(async (url) => {
  hideError();
  resetSource();
  $("upload").hidden = true;
  state.source = { url, preview: null, name: url };
  const upload = api.uploadId(url);
  if (upload) {
    state.source.preview = await api.uploadBlobUrl(upload);
    showPreview(state.source.preview);
  } else {
    // The page's Content-Security-Policy loads media from this service only, so another site's video
    // is not previewed here; the job fetches it server-side. Trim by number.
    $("source-note").textContent =
      "A video at another address is not previewed here (this page loads media only from this service); " +
      "the job fetches it. Trim by seconds below if needed.";
    $("source-note").hidden = false;
    $("source-preview").hidden = false;
    $("source-video").hidden = true;
    $("trim-track").hidden = true;
  }
  updateSubmit();
});

function showPreview(url) {
  const video = $("source-video");
  video.hidden = false;
  $("trim-track").hidden = false;
  video.src = url;
  $("source-preview").hidden = false;
}

function initTrim() {
  const start = $("trim-start");
  const end = $("trim-end");
  const video = $("source-video");
  const gap = 0.1;
  start.addEventListener("input", () => {
    if (+start.value > +end.value - gap) start.value = Math.max(0, +end.value - gap);
    video.currentTime = +start.value; // the scrubber shows the frame the cut starts at
    syncTrim("range");
  });
  end.addEventListener("input", () => {
    if (+end.value < +start.value + gap) end.value = +start.value + gap;
    video.currentTime = +end.value;
    syncTrim("range");
  });
  $("trim-start-s").addEventListener("change", () => syncTrim("number"));
  $("trim-end-s").addEventListener("change", () => syncTrim("number"));
  $("trim-start-here").addEventListener("click", () => {
    $("trim-start-s").value = video.currentTime.toFixed(2);
    syncTrim("number");
  });
  $("trim-end-here").addEventListener("click", () => {
    $("trim-end-s").value = video.currentTime.toFixed(2);
    syncTrim("number");
  });
  $("trim-reset").addEventListener("click", () => setDuration(state.duration));
}

function setDuration(duration) {
  state.duration = Number.isFinite(duration) ? duration : 0;
  for (const id of ["trim-start", "trim-end"]) $(id).max = String(state.duration || 1);
  $("trim-start").value = 0;
  $("trim-end").value = state.duration || 1;
  $("trim-start-s").value = "0";
  $("trim-end-s").value = state.duration ? state.duration.toFixed(2) : "";
  syncTrim("range");
}

function syncTrim(from) {
  const start = $("trim-start");
  const end = $("trim-end");
  if (from === "range") {
    $("trim-start-s").value = (+start.value).toFixed(2);
    $("trim-end-s").value = state.duration ? (+end.value).toFixed(2) : $("trim-end-s").value;
  } else {
    start.value = $("trim-start-s").value || 0;
    end.value = $("trim-end-s").value || state.duration || 1;
  }
  const max = +start.max || 1;
  const span = $("trim-span");
  span.style.left = `${(100 * +start.value) / max}%`;
  span.style.width = `${Math.max(0, (100 * (+end.value - +start.value)) / max)}%`;
}

// {start, end} to send, or {} for the whole clip. End is left out when it is the clip's end.
function trimParams() {
  const start = parseFloat($("trim-start-s").value) || 0;
  const end = parseFloat($("trim-end-s").value);
  const out = {};
  if (start > 0) out.start = Math.round(start * 100) / 100;
  if (Number.isFinite(end) && end > 0 && !(state.duration && end >= state.duration - 0.05)) {
    out.end = Math.round(end * 100) / 100;
  }
  return out;
}

// --- settings: model, background, format --------------------------------------------------------------------

let models = { models: [], default: "human" };

async function loadModels() {
  const response = await fetch("/console/models.json", { credentials: "omit" });
  models = await response.json();
  $("models-note").textContent =
    "frames/s: end to end at 1280x720 on a 2-core CPU (docs/BENCHMARKS.md); J: mean overlap with " +
    "hand-drawn masks, 1 is perfect (docs/QUALITY.md). A GPU is many times faster.";
  renderModels({});
}

function renderModels(rates) {
  const box = $("models");
  const chosen = box.querySelector("input:checked");
  const current = chosen ? chosen.value : models.default;
  box.replaceChildren(
    ...models.models.map((m) => {
      const input = el("input", { type: "radio", name: "model", value: m.name, checked: m.name === current });
      const rate = rates[m.name] !== undefined ? ` · ${fmtNum(rates[m.name])} credits/min` : "";
      return el("label", { className: "choice" }, [
        el("div", {}, [input, " ", el("span", { className: "name" }, [m.name])]),
        el("div", { className: "desc" }, [m.description]),
        el("div", { className: "figs" }, [`${m.fps_720p} frames/s · J ${m.mean_j.toFixed(2)}${rate}`]),
      ]);
    }),
  );
}

function initSettings() {
  for (const radio of document.querySelectorAll("input[name=bg]")) {
    radio.addEventListener("change", onBackground);
  }
  $("bg-color").addEventListener("input", () => {
    document.querySelector("input[name=bg][value=color]").checked = true;
    onBackground();
  });
  $("bg-file").addEventListener(
    "change",
    guard(async () => {
      const file = $("bg-file").files[0];
      if (!file) return;
      $("bg-url").value = "";
      state.bgImage = "";
      updateSubmit("Uploading the background…");
      let asset;
      try {
        asset = await api.upload(file, (f) => {
          $("bg-image-state").textContent = `uploading ${Math.round(f * 100)} %`;
        });
      } catch (e) {
        $("bg-image-state").textContent = "upload failed";
        updateSubmit();
        throw e;
      }
      state.bgImage = asset.asset_url || asset.url;
      $("bg-image-state").textContent = `${file.name} uploaded`;
      updateSubmit();
    }),
  );
  $("bg-url").addEventListener("input", () => {
    state.bgImage = $("bg-url").value.trim();
    $("bg-image-state").textContent = "";
    updateSubmit();
  });
  const box = $("formats");
  box.replaceChildren(
    ...FORMATS.map((f) =>
      el("label", { className: "pill", id: `fmt-${f.value}` }, [
        el("input", { type: "radio", name: "format", value: f.value, checked: f.value === DEFAULT_FORMAT }),
        ` ${f.label}`,
      ]),
    ),
  );
  for (const radio of box.querySelectorAll("input")) radio.addEventListener("change", onFormat);
  $("submit").addEventListener("click", submit);
  onBackground();
}

function background() {
  return document.querySelector("input[name=bg]:checked").value;
}

function onBackground() {
  const kind = background();
  $("bg-image").hidden = kind !== "image";
  const transparent = kind === "transparent";
  for (const f of FORMATS) {
    const input = document.querySelector(`input[name=format][value=${f.value}]`);
    const off = transparent && !f.alpha;
    input.disabled = off;
    $(`fmt-${f.value}`).classList.toggle("off", off);
    $(`fmt-${f.value}`).title = off ? `${f.label} has no alpha channel` : "";
    if (off && input.checked) document.querySelector(`input[name=format][value=${DEFAULT_FORMAT}]`).checked = true;
  }
  onFormat();
  updateSubmit();
}

function onFormat() {
  const notes = [];
  if (background() === "transparent") {
    notes.push("MP4 (H.264) cannot carry transparency: it is off while the background is transparent.");
  }
  const f = FORMATS.find((x) => x.value === chosenFormat());
  if (f && !f.plays) notes.push(`${f.label} does not play in a browser: it is shown as a download only.`);
  $("format-note").textContent = notes.join(" ");
}

function chosenFormat() {
  return document.querySelector("input[name=format]:checked").value;
}

function updateSubmit(reason) {
  let why = reason || "";
  if (!why && !state.source) why = "Give a video first.";
  if (!why && !state.source.url) why = "Uploading…";
  if (!why && background() === "image" && !state.bgImage) why = "Give a background image.";
  $("submit").disabled = Boolean(why);
  $("submit-hint").textContent = why;
}

function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function jobParams() {
  const kind = background();
  const params = {
    video_url: state.source.url,
    model: document.querySelector("input[name=model]:checked").value,
    output_format: chosenFormat(),
    bg_type: kind,
    ...trimParams(),
  };
  if (kind === "color") params.bg_color = hexRgb($("bg-color").value);
  if (kind === "image") params.bg_image_url = state.bgImage;
  return params;
}

const submit = guard(async () => {
  hideError();
  const params = jobParams();
  $("submit").disabled = true;
  try {
    const created = await api.createJob(params);
    watch(created.id, {
      trimStart: params.start || 0,
      transparent: params.bg_type === "transparent",
      format: params.output_format,
      preview: state.source.preview,
    });
    refreshJobs();
    $("job-card").scrollIntoView({ behavior: "smooth", block: "start" });
  } finally {
    updateSubmit();
  }
});

// --- watching a job ------------------------------------------------------------------------------------------

function watch(id, info) {
  stopWatching();
  state.job = { id, ...info, t0: performance.now(), done: false };
  $("job-card").hidden = false;
  $("result-card").hidden = true;
  $("job-id").textContent = id;
  $("job-status").textContent = "queued";
  $("job-stage").textContent = "…";
  setJobProgress(0);
  $("job-eta").textContent = "ETA …";
  $("cancel").disabled = false;
  state.clockTimer = setInterval(tick, 500);
  poll();
}

function stopWatching() {
  clearTimeout(state.pollTimer);
  clearInterval(state.clockTimer);
}

function setJobProgress(pct) {
  $("job-progress").value = pct;
  $("job-pct").textContent = `${pct.toFixed(1)} %`;
}

function tick() {
  const job = state.job;
  if (!job || job.done) return;
  const now = performance.now();
  $("job-elapsed").textContent = fmtSeconds((now - job.t0) / 1000);
  const p = +$("job-progress").value;
  // The rate since the first report past ingest (queueing and fetching say nothing about the rest):
  // crude, but honest about what it is.
  if (!job.mark && p >= 5 && p < 100) job.mark = { t: now, p };
  const m = job.mark;
  const rate = m && p > m.p ? (p - m.p) / ((now - m.t) / 1000) : 0;
  $("job-eta").textContent = rate > 0 && p < 100 ? `ETA ${fmtSeconds((100 - p) / rate)}` : "ETA …";
}

async function poll() {
  const job = state.job;
  if (!job || job.done) return;
  let view;
  try {
    view = await api.getJob(job.id);
  } catch (e) {
    if (state.job !== job) return;
    showError(e);
    if (e.status === 404 || e.status === 401 || e.status === 403) return; // polling again cannot help
    state.pollTimer = setTimeout(poll, POLL_MS * 4);
    return;
  }
  if (state.job !== job) return; // another job took the view meanwhile
  showJob(view);
  if (TERMINAL.has(view.status)) finish(view);
  else state.pollTimer = setTimeout(poll, POLL_MS);
}

function showJob(view) {
  $("job-status").textContent = view.status;
  $("job-stage").textContent = STAGES[view.stage] || view.stage || "waiting";
  setJobProgress(Number(view.progress) || 0);
}

function finish(view) {
  const job = state.job;
  job.done = true;
  stopWatching();
  tick();
  $("job-elapsed").textContent = fmtSeconds((performance.now() - job.t0) / 1000);
  $("job-eta").textContent = view.status;
  $("cancel").disabled = true;
  if (view.status === "completed") showResult(view);
  else if (view.error) showError(new api.ApiError(0, view.error.code, view.error.message));
  refreshUsage();
  refreshJobs();
}

$("cancel").addEventListener(
  "click",
  guard(async () => {
    const job = state.job;
    if (!job || job.done) return;
    $("cancel").disabled = true;
    await api.cancelJob(job.id);
    clearTimeout(state.pollTimer);
    poll();
  }),
);

// --- result: before/after, split slider, playback, download --------------------------------------------------

function showResult(view) {
  const job = state.job;
  const card = $("result-card");
  const after = $("after");
  const img = $("after-img");
  const before = $("before");
  const f = FORMATS.find((x) => x.value === view.output_format) || { plays: "video" };
  card.hidden = false;
  const url = view.output_url;
  const download = $("download");
  download.hidden = !url;
  if (url) {
    download.href = url;
    download.dataset.name = `videobg-${view.id}${EXTENSIONS[view.output_format] || ""}`;
  }
  $("after-pane").classList.toggle("checker", job.transparent);
  after.hidden = f.plays !== "video";
  img.hidden = f.plays !== "image";
  after.removeAttribute("src");
  img.removeAttribute("src");
  if (url && f.plays === "video") after.src = url;
  if (url && f.plays === "image") img.src = url;
  before.hidden = !job.preview;
  if (job.preview) before.src = job.preview;
  document.querySelector(".before-pane").hidden = !job.preview;
  $("view-split").disabled = !job.preview || !f.plays;
  if (!job.preview) setView("side");
  $("play").closest(".player").hidden = f.plays !== "video";
  const notes = [];
  if (!url) notes.push("The result has expired (retention deleted it).");
  if (!f.plays) notes.push("This format does not play in a browser: download it.");
  if (!job.preview) notes.push("No 'before' view: the source was not given in this tab.");
  $("result-note").textContent = notes.join(" ");
  if (f.plays === "image" && job.preview) {
    before.loop = true;
    before.play().catch(() => {});
  }
}

// The presigned URL is on the object store's origin, where <a download> is ignored (the browser would
// just open the video). Fetch it (the store answers CORS for this page) and save the bytes under a name;
// if the store refuses, the link opens the URL in a new tab as a plain link would.
async function downloadResult(e) {
  const link = $("download");
  e.preventDefault();
  if (link.dataset.saving) return;
  link.dataset.saving = "1";
  const label = link.textContent;
  link.textContent = "Downloading…";
  try {
    const response = await fetch(link.href, { credentials: "omit" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blobUrl = URL.createObjectURL(await response.blob());
    const save = el("a", { href: blobUrl, download: link.dataset.name || "videobg-result" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  } catch {
    window.open(link.href, "_blank", "noopener");
  } finally {
    link.textContent = label;
    delete link.dataset.saving;
  }
}

function setView(mode) {
  const compare = $("compare");
  compare.className = `compare ${mode}`;
  // split: the panes are as wide as the video at the height it is shown, so the slider's 0..100 % runs
  // across the picture and not across letterbox bars
  const before = $("before");
  const aspect = before.videoWidth && before.videoHeight ? before.videoWidth / before.videoHeight : 0;
  compare.style.maxWidth = mode === "split" && aspect ? `${Math.round(SPLIT_HEIGHT_PX * aspect)}px` : "";
  $("view-side").classList.toggle("on", mode === "side");
  $("view-split").classList.toggle("on", mode === "split");
  $("after-pane").style.clipPath = mode === "split" ? `inset(0 0 0 ${$("split").value}%)` : "";
}

function initPlayer() {
  const after = $("after");
  const before = $("before");
  $("download").addEventListener("click", downloadResult);
  $("view-side").addEventListener("click", () => setView("side"));
  $("view-split").addEventListener("click", () => setView("split"));
  $("split").addEventListener("input", () => setView("split"));
  const follow = () => {
    if (!state.job || $("before").hidden || !before.src) return;
    const t = after.currentTime + (state.job.trimStart || 0);
    if (Math.abs(before.currentTime - t) > 0.15) before.currentTime = t;
  };
  $("play").addEventListener("click", () => {
    if (after.paused) {
      follow();
      after.play().catch((e) => showError(new api.ApiError(0, "playback_error", e.message)));
    } else after.pause();
  });
  after.addEventListener("play", () => {
    $("play").textContent = "Pause";
    if (before.src && !before.hidden) before.play().catch(() => {});
  });
  after.addEventListener("pause", () => {
    $("play").textContent = "Play";
    before.pause();
    follow();
  });
  after.addEventListener("ended", () => {
    $("play").textContent = "Play";
    before.pause();
  });
  before.addEventListener("loadedmetadata", () => {
    if ($("compare").classList.contains("split")) setView("split");
  });
  after.addEventListener("loadedmetadata", () => {
    $("seek").max = String(after.duration || 1);
    showTime();
  });
  after.addEventListener("timeupdate", () => {
    $("seek").value = String(after.currentTime);
    showTime();
    follow();
  });
  $("seek").addEventListener("input", () => {
    after.currentTime = +$("seek").value;
    follow();
  });
  $("mute").addEventListener("change", () => {
    after.muted = $("mute").checked;
  });
  after.addEventListener("error", () => {
    if (after.src) showError(new api.ApiError(0, "playback_error", "The browser could not play the result"));
  });
}

function showTime() {
  const a = $("after");
  $("time").textContent = `${(a.currentTime || 0).toFixed(1)} / ${(a.duration || 0).toFixed(1)} s`;
}

// --- jobs list ------------------------------------------------------------------------------------------------

async function refreshJobs() {
  const cursor = state.pages[state.pages.length - 1];
  let page;
  try {
    page = await api.listJobs({ limit: JOBS_PAGE, cursor });
  } catch (e) {
    $("jobs-note").textContent = `The jobs list is not available: ${e.code} ${e.message}`;
    return;
  }
  const jobs = page.jobs || page.data || [];
  state.nextCursor = page.next_cursor || "";
  $("jobs-older").disabled = !state.nextCursor;
  $("jobs-newer").disabled = state.pages.length <= 1;
  $("jobs-note").textContent = jobs.length ? "" : "No jobs yet.";
  $("jobs-body").replaceChildren(
    ...jobs.map((j) => {
      const open = el("button", { type: "button", className: "link" }, [shortId(j.id)]);
      open.addEventListener("click", () => openJob(j));
      return el("tr", {}, [
        el("td", {}, [fmtDate(j.created_at)]),
        el("td", { className: `st-${j.status}` }, [j.status]),
        el("td", {}, [j.model || ""]),
        el("td", {}, [j.output_format || ""]),
        el("td", { className: "num" }, [j.billed_seconds == null ? "–" : fmtNum(j.billed_seconds)]),
        el("td", { className: "num" }, [fmtNum((j.credits && j.credits.charged) || 0)]),
        el("td", {}, [open]),
      ]);
    }),
  );
}

function initJobs() {
  $("jobs-refresh").addEventListener("click", refreshJobs);
  $("jobs-older").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.pages.push(state.nextCursor);
    refreshJobs();
  });
  $("jobs-newer").addEventListener("click", () => {
    if (state.pages.length > 1) state.pages.pop();
    refreshJobs();
  });
}

// A job from the list: watch it if it runs, else show its outcome. Its source is previewed when it was
// uploaded (read back through GET /v1/uploads/{id}/content).
const openJob = guard(async (j) => {
  hideError();
  const input = (j.input && j.input.video_url) || "";
  let preview = null;
  const upload = api.uploadId(input);
  if (upload) {
    try {
      preview = await api.uploadBlobUrl(upload);
    } catch {
      preview = null; // shown without its 'before' pane
    }
  }
  const trim = (j.input && j.input.start) || 0;
  watch(j.id, {
    trimStart: Number(trim) || 0,
    transparent: j.background && j.background.type === "transparent",
    format: j.output_format,
    preview,
  });
  $("job-card").scrollIntoView({ behavior: "smooth" });
});

// --- small helpers ----------------------------------------------------------------------------------------

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "checked" || k === "disabled") node[k] = Boolean(v);
    else if (k === "className" || k === "type" || k === "name" || k === "value" || k === "id") node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function fmtNum(x) {
  const n = Number(x) || 0;
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function fmtBytes(n) {
  return n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.ceil(n / 1e3)} kB`;
}

function fmtSeconds(s) {
  if (!Number.isFinite(s)) return "…";
  return s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

// --- start ------------------------------------------------------------------------------------------------

initKey();
initSource();
initSettings();
initPlayer();
initJobs();
loadModels().then(refreshAccount, (e) => showError(new api.ApiError(0, "console_error", String(e))));
