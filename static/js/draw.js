// The phone page: just the pad and the answer. It polls instead of opening the websocket, so a
// phone in a room of fifty does not download every weight snapshot it would never draw.

import { get } from "./api.js";
import { DrawPad } from "./drawpad.js";
import { SendToBoard } from "./sendboard.js";

const RECLASSIFY_MS = 3000; // the pad asks at most this often anyway (drawpad.js)
const STATUS_MS = 4000;

const pad = new DrawPad(document.querySelector('[data-panel="draw"]'));
const line = document.querySelector("[data-draw-status]");
new SendToBoard(document.querySelector("[data-send]"), pad);

async function showRun() {
  try {
    const run = await get("/api/run");
    const accuracy = run.metrics?.test_accuracy;
    const parts = [`network ${run.status === "running" ? "training" : run.status}`];
    parts.push(`${run.examples_seen.toLocaleString("en-US")} examples seen`);
    if (accuracy !== null && accuracy !== undefined) {
      parts.push(`${(accuracy * 100).toFixed(1)}% of test digits right`);
    }
    line.textContent = parts.join(" · ");
    return run.status;
  } catch {
    line.textContent = "cannot reach the server; retrying…";
    return null;
  }
}

let status = null;
setInterval(async () => {
  status = await showRun();
}, STATUS_MS);
showRun().then((s) => (status = s));
// While the network trains, the same drawing can get a better answer: ask again now and then.
setInterval(() => {
  if (status === "running" && !document.hidden) pad.refresh();
}, RECLASSIFY_MS);
