// Wires the runs page: the list of runs (GET /api/runs, refreshed every few seconds), the
// comparison of the ticked runs, the replay of the chosen one, and the presenter's resume,
// rename and delete. Which runs are ticked and which is replayed live in the address
// (?compare=a,b&replay=c), so a comparison can be bookmarked or put on a slide.

import { control, get, takeToken } from "./api.js";
import { invalidateStyles } from "./canvas.js";
import { Keyboard } from "./keys.js";
import { runStyle, setTheme } from "./palette.js";
import { AccuracyChart, CostOverlay, showLegend } from "./runs-charts.js";
import { Replay } from "./runs-replay.js";
import { RunTable } from "./runs-table.js";

const REFRESH_MS = 4000;
const CURVE_POINTS = 1200; // about one per pixel column of the widest chart
const SPARK_POINTS = 48;

const root = document.documentElement;
const $ = (selector) => document.querySelector(selector);

/** Everything the page knows; the panels draw from it. */
const state = {
  runs: [], // GET /api/runs, newest first
  details: new Map(), // id → GET /api/runs/{id} (with its updated_at)
  ticked: new Map(), // id → style slot, in the order ticked
  selected: null, // the id replayed
  epoch: null, // the epoch the replay shows
  showUntrained: false,
};

const presenter = takeToken() !== null;
document.body.classList.toggle("presenter", presenter);

const table = new RunTable($("[data-rows]"), {
  onTick: (id, ticked) => (ticked ? tick(id) : untick(id)),
  onSelect: select,
  onRace: compareRace,
  sparkline: (run) => get(`/api/runs/${run.id}?points=${SPARK_POINTS}`).then((d) => d.costs),
});
const costChart = new CostOverlay($("[data-cost-chart]"));
const accuracyChart = new AccuracyChart($("[data-accuracy-chart]"));
const replay = new Replay($('[data-panel="replay"]'), {
  onEpoch: (run, epoch) => (state.epoch = epoch),
  onProblem: notify,
});
const keys = new Keyboard();
window.backpropLive = { state, table, costChart, accuracyChart, replay }; // tests, console

// ---- the list ------------------------------------------------------------------------------

async function refresh() {
  let runs;
  try {
    ({ runs } = await get("/api/runs"));
  } catch (error) {
    notify(error.message, { fromRefresh: true });
    if (!state.runs.length) $("[data-count]").textContent = "none to show";
    return;
  }
  if ($("[data-notice]").dataset.fromRefresh) $("[data-notice]").hidden = true; // it is back
  state.runs = runs;
  const known = new Set(runs.map((run) => run.id));
  for (const id of [...state.ticked.keys()]) if (!known.has(id)) untick(id, false);
  if (state.selected && !known.has(state.selected)) select(null);
  await Promise.all(wantedDetails().map(loadDetail));
  showAll();
}

/** The runs whose curves or epochs are on screen, where the list says they have changed. */
function wantedDetails() {
  const ids = new Set([...state.ticked.keys(), state.selected].filter(Boolean));
  return state.runs.filter(
    (run) => ids.has(run.id) && state.details.get(run.id)?.updated_at !== run.updated_at,
  );
}

async function loadDetail(run) {
  try {
    state.details.set(run.id, await get(`/api/runs/${run.id}?points=${CURVE_POINTS}`));
  } catch (error) {
    notify(error.message);
  }
}

function shownRuns() {
  return state.runs.filter(
    (run) => state.showUntrained || run.examples_seen > 0 || run.live || state.ticked.has(run.id),
  );
}

function showAll() {
  const styles = new Map([...state.ticked].map(([id, slot]) => [id, runStyle(slot)]));
  const shown = shownRuns();
  table.show(shown, styles, state.selected);
  const hidden = state.runs.length - shown.length;
  $("[data-count]").textContent =
    `${shown.length} of ${state.runs.length}` + (hidden ? ` (${hidden} never trained)` : "");
  showComparison(styles);
  const detail = state.details.get(state.selected) ?? null;
  replay.setRun(detail);
  showRunActions(detail);
  remember();
}

function showComparison(styles) {
  const compared = [...state.ticked.keys()]
    .filter((id) => state.details.has(id))
    .map((id) => ({ id, style: styles.get(id), detail: state.details.get(id) }));
  costChart.setRuns(compared);
  accuracyChart.setRuns(compared);
  showLegend($("[data-legend]"), compared, select);
  $("[data-compare-empty]").hidden = compared.length > 0;
}

// ---- ticking and choosing ------------------------------------------------------------------

async function tick(id) {
  const used = new Set(state.ticked.values());
  let slot = 0;
  while (used.has(slot)) slot += 1;
  state.ticked.set(id, slot);
  const run = state.runs.find((r) => r.id === id);
  if (run && !state.details.has(id)) await loadDetail(run);
  if (!state.selected) return select(id, false);
  showAll();
}

/** Lay every lane of race `raceId` over each other (GET /api/runs?race=…), in lane order,
 *  instead of what was ticked. */
async function compareRace(raceId) {
  let runs;
  try {
    ({ runs } = await get(`/api/runs?race=${encodeURIComponent(raceId)}`));
  } catch (error) {
    return notify(error.message);
  }
  state.ticked.clear();
  const lanes = [...runs].sort((a, b) => a.race.lane - b.race.lane);
  lanes.forEach((run, slot) => state.ticked.set(run.id, slot));
  await Promise.all(lanes.filter((run) => !state.details.has(run.id)).map(loadDetail));
  showView("compare");
  showAll();
}

function untick(id, redraw = true) {
  state.ticked.delete(id);
  if (redraw) showAll();
}

/** Replay run `id` (null: none); `andShow`: bring the replay forward on a small screen. */
async function select(id, andShow = true) {
  state.selected = id;
  const run = state.runs.find((r) => r.id === id);
  if (run && state.details.get(id)?.updated_at !== run.updated_at) await loadDetail(run);
  showAll();
  if (id && andShow) showView("replay");
}

function showView(view) {
  $(".library").dataset.view = view;
  for (const tab of document.querySelectorAll("[data-view-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.viewTab === view));
  }
  markAllDirty();
}

/** Keep the comparison and the replayed run in the address, without adding history. */
function remember() {
  const params = [];
  if (state.ticked.size) params.push(`compare=${[...state.ticked.keys()].map(encodeURIComponent).join(",")}`);
  if (state.selected) params.push(`replay=${encodeURIComponent(state.selected)}`);
  const address = location.pathname + (params.length ? `?${params.join("&")}` : "");
  if (address !== location.pathname + location.search) history.replaceState(null, "", address);
}

function restoreFromAddress() {
  const params = new URLSearchParams(location.search);
  for (const id of (params.get("compare") ?? "").split(",").filter(Boolean)) {
    state.ticked.set(id, state.ticked.size);
  }
  state.selected = params.get("replay") || null;
}

// ---- the presenter's actions ---------------------------------------------------------------

function showRunActions(detail) {
  $("[data-resume]").disabled = $("[data-rename]").disabled = !detail;
  const remove = $("[data-delete]");
  remove.disabled = !detail || detail.live;
  remove.title = detail?.live ? "The live run cannot be deleted" : "Delete this run and all it kept";
}

async function resumeHere() {
  const detail = state.details.get(state.selected);
  if (!detail || state.epoch === null) return;
  try {
    await control("POST", `/api/runs/${detail.id}/resume`, { epoch: state.epoch });
  } catch (error) {
    return notify(error.message);
  }
  const where = state.epoch === 0 ? "its start" : `the end of epoch ${state.epoch}`;
  notify(`“${detail.name}” is the live run again, paused at ${where}.`, { live: true });
  state.details.delete(detail.id); // it lost its later epochs, perhaps within the same second
  refresh();
}

function rename() {
  const detail = state.details.get(state.selected);
  if (!detail) return;
  const title = $("[data-replay-title]");
  const input = document.createElement("input");
  input.value = detail.name;
  input.maxLength = 200;
  input.setAttribute("aria-label", "the run's new name");
  title.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save && input.value.trim() && input.value.trim() !== detail.name) {
      try {
        await control("PATCH", `/api/runs/${detail.id}`, { name: input.value });
        state.details.delete(detail.id);
      } catch (error) {
        notify(error.message);
      }
    }
    title.textContent = detail.name;
    refresh();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

function confirmDelete() {
  const detail = state.details.get(state.selected);
  if (!detail) return;
  const dialog = $("[data-confirm]");
  $("[data-confirm-text]").textContent =
    `Delete “${detail.name}” and everything kept with it: its cost curve, its test results ` +
    `and the weights of its ${detail.epochs.length} stored epochs? This cannot be undone.`;
  dialog.returnValue = "";
  dialog.showModal();
  const release = keys.bind({}, { exclusive: true });
  dialog.addEventListener(
    "close",
    async () => {
      release();
      if (dialog.returnValue !== "delete") return;
      try {
        await control("DELETE", `/api/runs/${detail.id}`);
      } catch (error) {
        return notify(error.message);
      }
      untick(detail.id, false);
      select(null);
      refresh();
    },
    { once: true },
  );
}

// ---- notices, theme, drawing ---------------------------------------------------------------

/** One line above the panels: a refusal from the server, or what an action did; a click
 *  puts it away. `fromRefresh`: the list could not be read, and the next read that works
 *  puts it away too. */
function notify(message, { live = false, fromRefresh = false } = {}) {
  const notice = $("[data-notice]");
  notice.textContent = message;
  if (fromRefresh) notice.dataset.fromRefresh = "yes";
  else delete notice.dataset.fromRefresh;
  if (live) {
    const link = document.createElement("a");
    link.href = "/";
    link.textContent = "Open the live view →";
    notice.append(" ", link);
  }
  notice.hidden = false;
}

function applyTheme(name) {
  root.dataset.theme = name;
  setTheme(name);
  localStorage.setItem("backprop-live-theme", name);
  markAllDirty();
  showAll();
  table.redraw();
}

function markAllDirty() {
  invalidateStyles();
  costChart.dirty = accuracyChart.dirty = true;
  replay.markDirty();
}

function frameLoop() {
  for (const panel of [costChart, accuracyChart, replay]) if (panel.dirty) panel.render();
  requestAnimationFrame(frameLoop);
}

// ---- wiring --------------------------------------------------------------------------------

$("[data-x]").addEventListener("change", (event) => costChart.setAxes({ xField: event.target.value }));
$("[data-log-x]").addEventListener("change", (event) => costChart.setAxes({ logX: event.target.checked }));
$("[data-log-cost]").addEventListener("change", (event) =>
  costChart.setAxes({ logCost: event.target.checked }),
);
$("[data-show-untrained]").addEventListener("change", (event) => {
  state.showUntrained = event.target.checked;
  showAll();
});
$("[data-notice]").addEventListener("click", (event) => {
  if (!event.target.closest("a")) event.currentTarget.hidden = true;
});
$("[data-resume]").addEventListener("click", resumeHere);
$("[data-rename]").addEventListener("click", rename);
$("[data-delete]").addEventListener("click", confirmDelete);
$("[data-toggle-theme]").addEventListener("click", () =>
  applyTheme(root.dataset.theme === "dark" ? "light" : "dark"),
);
for (const tab of document.querySelectorAll("[data-view-tab]")) {
  tab.addEventListener("click", () => showView(tab.dataset.viewTab));
}
for (const head of document.querySelectorAll(".panel-head")) {
  head.addEventListener("click", (event) => {
    if (event.target.closest("input, label, button, select")) return;
    head.closest(".panel").classList.toggle("explaining");
  });
}
keys.bind({
  ArrowLeft: () => replay.nudge(-1),
  ArrowRight: () => replay.nudge(1),
  " ": () => replay.togglePlay(),
  t: () => applyTheme(root.dataset.theme === "dark" ? "light" : "dark"),
});
new ResizeObserver(() => {
  markAllDirty();
  table.redraw();
}).observe($(".library"));

setTheme(root.dataset.theme);
restoreFromAddress();
refresh().then(() => {
  const live = state.runs.find((run) => run.live);
  if (!state.selected && live) select(live.id, false);
});
setInterval(refresh, REFRESH_MS);
requestAnimationFrame(frameLoop);
