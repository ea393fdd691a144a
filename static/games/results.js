// The results page: the server renders score, leaderboard and completion; this module adds the
// completion's automatic step (MTurk form submission or the panel redirect), a copy button for
// the code, and a short refresh while the last rounds are still being scored.

import { getJSON, sleep } from "./api.js";
import { forgetSession } from "./uploads.js";

const REDIRECT_AFTER_MS = 5000;
const REFRESHES_MS = [2000, 4000, 8000];

const section = document.getElementById("results");
const $ = (id) => document.getElementById(id);

function row(cells, isYou) {
  const tr = document.createElement("tr");
  if (isYou) {
    tr.className = "you";
    tr.setAttribute("aria-current", "true");
  }
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = String(cell);
    tr.append(td);
  }
  return tr;
}

function render(summary) {
  $("results-score").textContent = String(summary.score);
  $("results-high-score").textContent = String(summary.high_score);
  $("results-rank").textContent = String(summary.you.rank);
  const rows = summary.leaderboard.map((entry) =>
    row([entry.rank, entry.username, entry.score], entry.username === summary.username));
  if (rows.length > 0) $("leaderboard-rows").replaceChildren(...rows);
  const outside = summary.you.rank > summary.leaderboard.length;
  $("leaderboard-you").replaceChildren(
    ...(outside ? [row([summary.you.rank, `${summary.username} (you)`, summary.you.score], true)] : []));
}

// Scores of the last rounds may still be on their way from the scoring worker.
async function refresh(url) {
  let last = null;
  for (const delay of REFRESHES_MS) {
    await sleep(delay);
    try {
      const summary = await getJSON(url);
      const key = JSON.stringify([summary.score, summary.high_score, summary.leaderboard]);
      if (key !== last) render(summary);
      last = key;
    } catch (error) {
      $("results-note").textContent = `Could not refresh the scores: ${error.message}`;
      return;
    }
  }
}

function complete() {
  forgetSession(section.dataset.scope); // the session is over: a later visit starts anew
  const code = $("completion-code");
  const copy = $("copy-code");
  if (code && copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(code.textContent.trim());
      copy.textContent = "Copied";
    });
  }
  const mturk = $("mturk-form");
  if (mturk) {
    mturk.submit();
    return;
  }
  const redirect = $("completion-redirect");
  if (redirect) setTimeout(() => window.location.assign(redirect.href), REDIRECT_AFTER_MS);
}

if ($("completion")) complete();
refresh(section.dataset.summaryUrl);
