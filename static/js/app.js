// Wires the live page: one socket feeds one state, panels redraw on requestAnimationFrame only.

import { takeToken } from "./api.js";
import { invalidateStyles } from "./canvas.js";
import { Controls } from "./controls.js";
import { CostChart } from "./cost.js";
import { DrawPad } from "./drawpad.js";
import { ExplainMode } from "./explain.js";
import { decodeModel, decodeProbe, dequantise, laneOf } from "./frames.js";
import { GalleryPanel } from "./gallery.js";
import { GradientsPanel } from "./gradients.js";
import { Keyboard } from "./keys.js";
import { NetworkView } from "./network.js";
import { setTheme } from "./palette.js";
import { Race } from "./race.js";
import { RacePresets } from "./race-presets.js";
import { SendToBoard } from "./sendboard.js";
import { Socket } from "./socket.js";
import { StatusBar } from "./status.js";

const root = document.documentElement;
const $ = (selector) => document.querySelector(selector);

/** Everything the page knows about the run; panels draw from it, frames update it. */
const state = {
  runId: null,
  run: null,
  layerSizes: null,
  activation: "sigmoid",
  testProbe: null,
  drawing: null, // the latest /api/classify answer for the draw pad
  probeDrawing: false,
};

const network = new NetworkView($('[data-panel="network"]'));
const cost = new CostChart($('[data-panel="cost"]'));
const gradients = new GradientsPanel($('[data-panel="gradients"]'));
const race = new Race($("[data-race]"), {
  onToggle(on) {
    root.classList.toggle("racing", on);
    markAllDirty();
  },
});
const panels = [network, cost, gradients, race];
const drawPad = new DrawPad($('[data-panel="draw"]'), {
  onResult(result) {
    state.drawing = result;
    if (state.probeDrawing) showProbe();
  },
});
const socket = new Socket("/ws");
const presenter = takeToken() !== null;
const controls = presenter ? new Controls($("[data-controls]")) : null;
const racePresets = presenter
  ? new RacePresets($("[data-race-presets]"), { send: (...request) => controls.send(...request) })
  : null;
const keys = new Keyboard();
const status = new StatusBar($("[data-status]"), {
  onReset: () => controls?.reset(),
  onReconnect: () => socket.reconnectNow(),
});
window.backpropLive = { state, cost, network, gradients, race, socket }; // for tests and the console
const explain = new ExplainMode($("[data-explain]"), {
  state,
  keys,
  presenter,
  onToggle(on) {
    root.classList.toggle("explaining", on);
    markAllDirty();
  },
});
window.backpropLive.explain = explain;
const gallery = new GalleryPanel($('[data-panel="gallery"]'), {
  perDigit: $("[data-per-digit]"),
  presenter,
  onExplain: (example) => explain.openWith(example),
});
panels.push(gallery);
window.backpropLive.gallery = gallery;
new SendToBoard($("[data-send]"), drawPad);

function setRun(run, message = null) {
  if (run.id !== state.runId) startOver(run.id);
  state.run = run;
  state.activation = run.config?.activation ?? state.activation;
  cost.setBatchesPerEpoch(run.batches_per_epoch);
  status.setRun(run, message ?? run.message);
  controls?.update(run);
}

/** A new run id: a fresh network, so every chart starts again. */
function startOver(runId) {
  state.runId = runId;
  cost.reset();
  gradients.reset();
  network.reset();
  state.testProbe = null;
}

/** Frames arrive in order, so one with a new run id means the run was replaced: start over. */
function follow(frame) {
  if (frame.run !== state.runId) startOver(frame.run);
}

/** The network view shows either the fixed test digit or the user's drawing. */
function showProbe() {
  const drawing = state.drawing;
  if (state.probeDrawing && drawing) {
    network.setProbe({ source: "drawing", pixels: drawing.input, activations: drawing.activations });
  } else if (state.testProbe) {
    network.setProbe(state.testProbe);
  }
}

socket.on("hello", (frame) => {
  startOver(frame.run.id);
  setRun(frame.run);
  status.setViewers(frame.viewers);
  const model = frame.model;
  state.layerSizes = model.layer_sizes;
  network.setModel(decodeModel(model.layer_sizes, model.activation, model.weights));
  cost.addHistory(frame.history);
  gradients.addHistory(frame.history);
  race.fromHello(frame.race ?? null, frame.run);
  followRace();
});

/** The race's lanes train while it is on; the status bar and the controls speak for it. A
 *  step runs the rest of a round, seconds of training: the step buttons show it until then. */
function followRace() {
  status.setRace(race.body);
  controls?.setRace(race.body);
  root.classList.toggle("stepping", Boolean(race.body?.stepping));
}

// A lane's frames are the race's; the panels below follow the single run.
socket.on("batches", (frame) => {
  if (laneOf(frame) !== null) return race.addBatches(frame);
  follow(frame);
  cost.addCosts(frame.first_batch, frame.costs);
  gradients.addGradients(frame.first_batch + frame.costs.length - 1, frame.gradients);
  status.setProgress(frame.epoch, frame.examples_seen);
});

socket.on("eval", (frame) => {
  if (laneOf(frame) !== null) return race.addEvaluation(frame);
  follow(frame);
  cost.addEvaluation(frame);
});

socket.on("snapshot", (frame) => {
  if (laneOf(frame) !== null) return race.setSnapshot(frame);
  follow(frame);
  state.layerSizes = frame.layer_sizes;
  network.setModel(decodeModel(frame.layer_sizes, state.activation, frame.weights));
  state.testProbe = decodeProbe(frame);
  showProbe();
  network.setNudges(frame.nudges);
  if (frame.gradient_maps) gradients.setMaps(dequantise(frame.gradient_maps), frame.gradient_maps.scale);
  drawPad.refresh();
});

socket.on("explain", (frame) => explain.follow(frame));

socket.on("gallery", (frame) => {
  gallery.update(frame);
  if (frame.run === state.runId) cost.setRoomEvaluations(frame.evaluations);
});

socket.on("status", (frame) => {
  setRun(frame.run, frame.message);
  race.follow(frame.race ?? null);
  followRace();
  status.setViewers(frame.viewers);
});

socket.onState((connection, retryAt) => {
  status.setConnection(connection, retryAt);
  root.dataset.connection = connection;
});

// With reduced motion the panels still follow the run, but redraw at most twice a second
// instead of flickering with every snapshot.
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");
const lastDrawn = new Map();

/** The only place that draws: once per animation frame, and only panels with news. */
function frameLoop(now) {
  const interval = reducedMotion.matches ? 500 : 0;
  for (const panel of panels) {
    if (!panel.dirty || now - (lastDrawn.get(panel) ?? -Infinity) < interval) continue;
    panel.render();
    lastDrawn.set(panel, now);
  }
  requestAnimationFrame(frameLoop);
}

function markAllDirty() {
  invalidateStyles();
  network.dirty = true;
  cost.dirty = true;
  gradients.dirtyLines = gradients.dirtyMaps = true;
  gallery.dirty = true;
  race.markDirty();
}

new ResizeObserver(markAllDirty).observe($(".board"));

// ---- presentation mode, theme, help, keys --------------------------------------------------

function togglePresent(on = !root.classList.contains("present")) {
  root.classList.toggle("present", on);
  const url = new URL(location.href);
  if (on) url.searchParams.set("present", "");
  else url.searchParams.delete("present");
  history.replaceState(null, "", url.pathname + url.search.replace("present=", "present"));
  markAllDirty();
}

function applyTheme(name) {
  root.dataset.theme = name;
  setTheme(name);
  localStorage.setItem("backprop-live-theme", name);
  markAllDirty();
  drawPad.showResult(drawPad.result);
}

function toggleFullScreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen?.().catch(() => {});
}

function toggleHelp() {
  const help = $("[data-help]");
  if (help.open) return help.close();
  help.showModal();
  // While the help is open the page's keys rest, except the one that closes it (Esc does too).
  const release = keys.bind({ "?": toggleHelp }, { exclusive: true });
  help.addEventListener("close", release, { once: true });
}

/** The room's digits take the network view's place (and, when presenting, the draw pad's). */
function toggleGallery() {
  root.classList.toggle("show-gallery");
  const url = new URL(location.href);
  if (root.classList.contains("show-gallery")) url.searchParams.set("gallery", "");
  else url.searchParams.delete("gallery");
  history.replaceState(null, "", url.pathname + url.search.replace(/=(&|$)/g, "$1"));
  markAllDirty();
}

function toggleDrawPad() {
  root.classList.toggle("hide-draw");
  markAllDirty();
}

keys.bind({
  " ": () => controls?.togglePlay(),
  ArrowRight: () => controls?.step(),
  r: () => controls?.reset(),
  e: () => explain.open(),
  g: toggleGallery,
  d: toggleDrawPad,
  p: () => togglePresent(),
  f: toggleFullScreen,
  t: () => applyTheme(root.dataset.theme === "dark" ? "light" : "dark"),
  x: () => race.on && race.toggleXAxis(),
  "?": toggleHelp,
});

$("[data-toggle-present]").addEventListener("click", () => togglePresent());
$("[data-toggle-gallery]").addEventListener("click", toggleGallery);
$("[data-toggle-help]").addEventListener("click", toggleHelp);
$("[data-explain-open]").addEventListener("click", () => explain.open());
$("[data-toggle-theme]").addEventListener("click", () =>
  applyTheme(root.dataset.theme === "dark" ? "light" : "dark"),
);
$('[data-race-action="start-pause"]').addEventListener("click", () => controls?.togglePlay());
$('[data-race-action="step"]').addEventListener("click", () => controls?.step());
$('[data-race-action="end"]').addEventListener("click", () => racePresets?.end());
$("[data-probe-drawing]").addEventListener("change", (event) => {
  state.probeDrawing = event.target.checked;
  showProbe();
});

// Tap on a panel's heading shows its one-sentence explanation (hover does it with a mouse).
for (const head of document.querySelectorAll(".panel-head")) {
  head.addEventListener("click", (event) => {
    if (event.target.closest("input, label, button")) return;
    head.closest(".panel").classList.toggle("explaining");
  });
}

setTheme(root.dataset.theme);
racePresets?.load();
socket.connect();
requestAnimationFrame(frameLoop);
