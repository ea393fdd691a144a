// The dashboard's export panel: start an export through the researcher API (session cookie +
// CSRF header) and poll each unfinished export until it succeeds or fails, updating its row.

import { ApiError, getJSON, postJSON, sleep } from "../games/api.js";

const config = JSON.parse(document.getElementById("dashboard-config").textContent);
const form = document.getElementById("export-form");
const list = document.getElementById("export-list");
const statusLine = document.getElementById("export-status");
const FINISHED = new Set(["succeeded", "failed"]);

// DRF answers {"detail": "..."} (with more keys on a 429: retry_after, quota) or {"field": ["..."]};
// flatten either into one sentence.
function message(error) {
  const body = error instanceof ApiError ? error.body : null;
  if (!body || typeof body !== "object") return error.message;
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body)
    .map(([field, value]) => (field === "detail" ? String(value) : `${field}: ${[].concat(value).join(" ")}`))
    .join("; ");
}

function cell(row, index) {
  while (row.cells.length <= index) row.insertCell();
  return row.cells[index];
}

function renderRow(row, exportJob) {
  row.dataset.status = exportJob.status;
  cell(row, 0).textContent = exportJob.id;
  cell(row, 1).textContent = exportJob.created_at.slice(0, 16).replace("T", " ");
  cell(row, 2).textContent = exportJob.created_by;
  const pill = document.createElement("span");
  pill.className = `pill ${exportJob.status}`;
  pill.textContent = exportJob.status;
  cell(row, 3).replaceChildren(pill);
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = exportJob.progress;
  bar.textContent = `${Math.round(exportJob.progress * 100)} %`;
  cell(row, 4).replaceChildren(bar);
  const links = exportJob.files.map((file) => {
    const link = document.createElement("a");
    link.href = file.url;
    link.download = "";
    link.textContent = file.name;
    link.title = `${file.bytes} bytes, SHA-256 ${file.sha256}`;
    return link;
  });
  if (exportJob.error) {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = exportJob.error;
    links.push(error);
  }
  cell(row, 5).replaceChildren(...links.flatMap((node) => [node, " "]));
}

async function poll(row, url) {
  for (;;) {
    let exportJob;
    try {
      exportJob = await getJSON(url);
    } catch (error) {
      // A dropped connection or a restarting server is worth waiting out; anything else is final.
      if (!(error instanceof ApiError) || !error.transient) throw error;
      await sleep(config.poll_ms * 3);
      continue;
    }
    renderRow(row, exportJob);
    if (FINISHED.has(exportJob.status)) return exportJob;
    await sleep(config.poll_ms);
  }
}

async function start(event) {
  event.preventDefault();
  const data = new FormData(form);
  const formats = data.getAll("formats");
  if (formats.length === 0) {
    statusLine.textContent = "Choose at least one format.";
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  statusLine.textContent = "Starting the export…";
  try {
    const body = { formats, filters: { quality: data.get("quality") }, since_last: data.has("since_last") };
    const exportJob = await postJSON(config.exports_url, body);
    const row = list.insertRow(0);
    row.dataset.exportUrl = exportJob.url;
    renderRow(row, exportJob);
    statusLine.textContent = `Export ${exportJob.id} is ${exportJob.status}…`;
    const finished = await poll(row, exportJob.url);
    statusLine.textContent = `Export ${finished.id} ${finished.status}.`;
  } catch (error) {
    statusLine.textContent = `Export error: ${message(error)}`;
  } finally {
    button.disabled = false;
  }
}

form.addEventListener("submit", start);
// Rendered disabled: submitted before this listener existed, the form would only reload the page.
form.querySelector("button[type=submit]").disabled = false;
for (const row of list.rows) {
  if (!FINISHED.has(row.dataset.status)) {
    poll(row, row.dataset.exportUrl).catch((error) => {
      statusLine.textContent = `Could not follow an export: ${message(error)}`;
    });
  }
}
