// Replay one run epoch by epoch from the weights the library stored at each epoch's end: the
// network view of the live page (network.js) reading the probe digit, and every first-layer
// neuron's 784 weights as a 28×28 image. A scrubber picks the epoch, Play steps through them.

import { get } from "./api.js";
import { TinyImage, fitCanvas } from "./canvas.js";
import { decodePixels } from "./frames.js";
import { gridFor } from "./gradients.js";
import { NetworkView } from "./network.js";
import { paintDiverging } from "./palette.js";
import { percent } from "./runs-table.js";

const PLAY_STEP_MS = 900;
const MOST_NEURONS_SHOWN = 100;
const TILE_GAP = 4;

/** A GET /api/runs/{id}/epochs/{k}/model answer as network.js draws it, with which run and
 *  epoch it is. */
function drawable(answer) {
  const weights = answer.weights.map((rows) => {
    const values = Float32Array.from(rows.flat());
    let scale = 0;
    for (const value of values) scale = Math.max(scale, Math.abs(value));
    return { rows: rows.length, cols: rows[0].length, values, scale };
  });
  const model = { layerSizes: answer.layer_sizes, activation: answer.activation, weights };
  const probe = {
    source: "test",
    index: answer.probe.index,
    label: answer.probe.label,
    pixels: decodePixels(answer.probe.pixels),
    activations: answer.activations,
  };
  return { run: answer.run, epoch: answer.epoch, model, probe };
}

export class Replay {
  /** `onEpoch(run, epoch)` is told when the shown epoch changes (for "resume here"). */
  constructor(panel, { onEpoch, onProblem }) {
    this.slider = panel.querySelector("[data-epoch]");
    this.label = panel.querySelector("[data-epoch-label]");
    this.playButton = panel.querySelector("[data-play]");
    this.title = panel.querySelector("[data-replay-title]");
    this.firstLayer = panel.querySelector("[data-first-layer]");
    this.firstLayerCaption = panel.querySelector(".first-layer figcaption");
    this.network = new NetworkView(panel.querySelector("[data-replay-network]"));
    this.onEpoch = onEpoch;
    this.onProblem = onProblem;
    this.tile = new TinyImage(28);
    this.run = null; // GET /api/runs/{id}
    this.shown = null; // the drawable model on screen: {run, epoch, model, probe}
    this.models = new Map(); // "id:epoch" → Promise of a drawable model
    this.timer = null;
    this.dirtyLayer = true;
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
    this.playButton.addEventListener("click", () => this.togglePlay());
  }

  get dirty() {
    return this.network.dirty || this.dirtyLayer;
  }

  /** The run to replay (GET /api/runs/{id}), or null; a new run starts at its last epoch. */
  setRun(run) {
    if (run === this.run) return; // the page's refresh found nothing new
    const same = run && this.run && run.id === this.run.id;
    const wasAt = this.epoch;
    if (!same) this.stop();
    if (same && run.epochs.length < this.run.epochs.length) this.forget(run.id); // resumed
    this.run = run;
    this.title.textContent = run ? run.name : "pick a run by its name";
    const count = run ? run.epochs.length : 0;
    this.slider.max = Math.max(0, count - 1);
    this.slider.disabled = this.playButton.disabled = count < 2;
    if (!run || count === 0) return this.clear();
    const at = same && run.epochs.includes(wasAt) ? run.epochs.indexOf(wasAt) : count - 1;
    this.show(at);
  }

  /** The epoch on screen (epochs finished; 0: the random start), or null. */
  get epoch() {
    return this.run?.epochs[Number(this.slider.value)] ?? null;
  }

  async show(index) {
    this.slider.value = index;
    const run = this.run;
    const epoch = run.epochs[index];
    this.label.textContent = epochText(run, epoch);
    this.onEpoch(run, epoch);
    try {
      const drawn = await this.model(run.id, epoch);
      if (this.run !== run || this.epoch !== epoch) return; // moved on meanwhile
      this.shown = drawn;
      this.network.setModel(drawn.model);
      this.network.setProbe(drawn.probe);
      this.dirtyLayer = true;
    } catch (error) {
      this.onProblem(error.message);
    }
  }

  model(runId, epoch) {
    const key = `${runId}:${epoch}`;
    if (!this.models.has(key)) {
      const loading = get(`/api/runs/${runId}/epochs/${epoch}/model`).then(drawable);
      loading.catch(() => this.models.delete(key));
      this.models.set(key, loading);
    }
    return this.models.get(key);
  }

  forget(runId) {
    for (const key of this.models.keys()) if (key.startsWith(`${runId}:`)) this.models.delete(key);
  }

  clear() {
    this.shown = null;
    this.network.reset();
    this.label.textContent = "epoch –";
    this.dirtyLayer = true;
  }

  togglePlay() {
    if (this.timer) return this.stop();
    if (!this.run || this.run.epochs.length < 2) return;
    if (Number(this.slider.value) >= this.run.epochs.length - 1) this.show(0);
    this.playButton.textContent = "❚❚ Pause";
    this.timer = setInterval(() => this.advance(), PLAY_STEP_MS);
  }

  advance() {
    const next = Number(this.slider.value) + 1;
    const last = this.run.epochs.length - 1;
    if (next > last) return this.stop();
    this.model(this.run.id, this.run.epochs[Math.min(next + 1, last)]); // fetch ahead
    this.show(next);
    if (next === last) this.stop();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.playButton.textContent = "▶ Play";
  }

  /** One step back or forward (the arrow keys). */
  nudge(step) {
    if (!this.run || this.run.epochs.length === 0) return;
    this.stop();
    const index = Math.min(Math.max(Number(this.slider.value) + step, 0), this.run.epochs.length - 1);
    this.show(index);
  }

  render() {
    if (this.network.dirty) this.network.render();
    if (this.dirtyLayer) this.renderFirstLayer();
  }

  markDirty() {
    this.network.dirty = true;
    this.dirtyLayer = true;
  }

  /** Each first-layer neuron's weights as a 28×28 image, scaled by its own largest. */
  renderFirstLayer() {
    this.dirtyLayer = false;
    const fitted = fitCanvas(this.firstLayer);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    if (!this.shown) return;
    const weights = this.shown.model.weights[0];
    const count = Math.min(weights.rows, MOST_NEURONS_SHOWN);
    this.firstLayerCaption.textContent =
      count < weights.rows
        ? `first-layer weights of the first ${count} of ${weights.rows} neurons, as 28×28 images`
        : `first-layer weights, one 28×28 image per neuron (${count})`;
    const { columns, side } = gridFor(count, width, height, TILE_GAP, 160);
    const left = (width - columns * (side + TILE_GAP) + TILE_GAP) / 2;
    for (let j = 0; j < count; j++) {
      const row = weights.values.subarray(j * 784, (j + 1) * 784);
      let peak = 1e-9;
      for (const value of row) peak = Math.max(peak, Math.abs(value));
      paintDiverging(this.tile.image, row, peak);
      const x = left + (j % columns) * (side + TILE_GAP);
      const y = Math.floor(j / columns) * (side + TILE_GAP);
      this.tile.drawTo(ctx, x, y, side);
    }
  }
}

/** "epoch 3 of 10 · 87.1% right" for the scrubber; epoch 0 is where the run started. */
function epochText(run, epoch) {
  const last = run.epochs[run.epochs.length - 1];
  if (epoch === 0) return `start · of ${last} epochs`;
  const evaluation = run.evals.find((e) => e.epoch === epoch);
  const score = evaluation ? ` · ${percent(evaluation.accuracy)} right` : "";
  return `epoch ${epoch} of ${last}${score}`;
}
