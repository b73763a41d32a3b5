// The page talks to the same JSON API a script would; the token (when the server wants one) stays in this tab.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { generators: [], limits: {}, lastRequest: null };

function headers(extra = {}) {
  const token = sessionStorage.getItem("synthaug-token");
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) {  // FastAPI's 422: a field's errors name it; a whole-body error has no field
        detail = body.detail.map((d) => (d.loc.length > 1 ? `${d.loc.slice(1).join(".")}: ${d.msg}` : d.msg)).join("; ");
      }
    } catch (_) { /* not JSON: keep the status line */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

function say(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// --- tabs -------------------------------------------------------------------------------------------
function showPanel(name) {
  for (const tab of document.querySelectorAll("nav [role=tab]")) {
    const on = tab.dataset.panel === name;
    tab.setAttribute("aria-selected", String(on));
    $(`panel-${tab.dataset.panel}`).hidden = !on;
  }
  if (name === "reports") loadRuns();
}

// --- generate -----------------------------------------------------------------------------------------
function fillClasses() {
  const gen = state.generators.find((g) => g.name === $("generator").value);
  $("class").replaceChildren(...(gen ? gen.class_names : []).map((c) => new Option(c, c)));
}

function generateBody() {
  return JSON.stringify({
    generator: $("generator").value, class_name: $("class").value,
    count: Number($("count").value), seed: Number($("seed").value),
  });
}

async function generate(event) {
  event.preventDefault();
  const body = generateBody();
  say("generate-status", "generating...");
  $("generate").disabled = true;
  try {
    const result = await (await api("/api/generate", { method: "POST", body, headers: { "Content-Type": "application/json" } })).json();
    $("grid").replaceChildren(...result.images.map((src, i) => {
      const img = new Image();
      img.src = src;
      img.alt = `${result.class_name} #${i}`;
      return img;
    }));
    state.lastRequest = body;
    $("download").disabled = false;
    say("generate-status", `${result.count} images of ${result.class_name} from ${result.generator}, seed ${result.seed}`);
  } catch (error) {
    say("generate-status", error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

async function downloadZip() {
  if (!state.lastRequest) return;
  try {
    const response = await api("/api/generate/zip", { method: "POST", body: state.lastRequest, headers: { "Content-Type": "application/json" } });
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name ? name[1] : "images.zip";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    say("generate-status", error.message, true);
  }
}

// --- classify -----------------------------------------------------------------------------------------
async function classify(file) {
  if (!file) return;
  const form = new FormData();
  form.append("files", file, file.name);
  say("classify-status", `classifying ${file.name}...`);
  try {
    const result = await (await api("/api/classify", { method: "POST", body: form })).json();
    const r = result.results[0];
    $("seen-as").src = r.seen_as;
    $("seen-as-caption").textContent = `${file.name}, ${r.format} ${r.uploaded_size.join("x")}`;
    $("predicted").textContent = r.predicted;
    const rows = Object.entries(r.probabilities).sort((a, b) => b[1] - a[1]);
    $("bars").replaceChildren(...rows.map(([name, p]) => {
      const row = document.createElement("div");
      row.className = "bar";
      row.dataset.class = name;
      const label = document.createElement("span");
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(100 * p).toFixed(1)} %`;
      row.append(label, track, value);
      return row;
    }));
    $("classify-result").hidden = false;
    say("classify-status", `${file.name}: ${r.predicted} (${(100 * rows[0][1]).toFixed(1)} %)`);
  } catch (error) {
    $("classify-result").hidden = true;
    say("classify-status", error.message, true);
  }
}

function setUpDrop() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    classify(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => classify(e.target.files[0]));
}

// --- reports ------------------------------------------------------------------------------------------
async function loadRuns() {
  try {
    const result = await (await api("/api/runs")).json();
    const items = result.runs.map((run) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#";
      link.dataset.run = run.name;
      link.textContent = run.name;
      link.addEventListener("click", (e) => { e.preventDefault(); openReport(run); });
      li.append(link, ` (${run.modified.replace("T", " ").replace("+00:00", " UTC")})`);
      // the run's answer and forest plot, so the list itself says what each run found
      if (run.answer) {
        const answer = document.createElement("p");
        answer.className = "answer";
        answer.textContent = run.answer;
        li.append(answer);
      }
      if (run.forest) {
        const img = document.createElement("img");
        img.className = "forest";
        img.src = run.forest;
        img.alt = `${run.name}: each arm's difference from the baseline`;
        li.append(img);
      }
      return li;
    });
    $("runs").replaceChildren(...items);
    say("reports-status", !result.runs_root_set ? "no --runs-root given: no reports to list"
      : result.runs.length ? `${result.runs.length} run(s) with a report` : "no run under --runs-root has a report.html yet");
  } catch (error) {
    say("reports-status", error.message, true);
  }
}

async function openReport(run) {
  try {
    const html = await (await api(run.report)).text();
    const frame = $("report");
    frame.srcdoc = html;  // sandboxed frame: the report's HTML, no script
    frame.hidden = false;
    say("reports-status", `report of ${run.name}`);
  } catch (error) {
    say("reports-status", error.message, true);
  }
}

// --- start --------------------------------------------------------------------------------------------
async function loadGenerators() {
  const result = await (await api("/api/generators")).json();
  state.generators = result.generators;
  $("generator").replaceChildren(...result.generators.map((g) => new Option(`${g.name} (${g.kind})`, g.name)));
  fillClasses();
  const clf = await (await api("/api/classifier")).json();
  $("classifier-info").textContent =
    `${clf.name} (${clf.model}) sees ${clf.image_size}x${clf.image_size} ${clf.channels === 1 ? "grey" : "RGB"} images; classes: ${clf.class_names.join(", ")}`;
}

async function start() {
  for (const tab of document.querySelectorAll("nav [role=tab]")) tab.addEventListener("click", () => showPanel(tab.dataset.panel));
  $("generator").addEventListener("change", fillClasses);
  $("generate-form").addEventListener("submit", generate);
  $("download").addEventListener("click", downloadZip);
  $("token").value = sessionStorage.getItem("synthaug-token") || "";
  $("token").addEventListener("change", async () => {
    sessionStorage.setItem("synthaug-token", $("token").value.trim());
    await connect();
  });
  setUpDrop();
  await connect();
}

async function connect() {
  try {
    const health = await (await api("/api/health")).json();
    state.limits = health.limits;
    $("count").max = health.limits.max_generate_images;
    $("token-box").hidden = !health.auth_required;
    await loadGenerators();
    say("server-status", `synthaug ${health.version} on ${health.device}`);
    document.body.dataset.ready = "true";
  } catch (error) {
    say("server-status", error.status === 401 ? `${error.message}: enter it above` : error.message, true);
  }
}

start();
