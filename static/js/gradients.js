// Gradients: how large each layer's weight gradient is over time (one line per layer, log
// scale), and the sensitivity maps: for every first-hidden-layer neuron, −dC/dW as a 28x28
// image, i.e. which input pixels' weights the latest mini-batch pushed up (blue) or down (orange).

import { TinyImage, chartFont, cssVar, drawValueGrid, fitCanvas, font } from "./canvas.js";
import { paintDiverging } from "./palette.js";
import {
  BucketSeries,
  forEachColumn,
  formatTick,
  logTicks,
  niceCeil,
  niceTicks,
} from "./series.js";
import { throttle } from "./throttle.js";

const DASHES = [[], [8, 5], [2, 4], [12, 4, 2, 4]];
const weightChange = new Float32Array(784);

export class GradientsPanel {
  constructor(panel) {
    this.lineCanvas = panel.querySelector("[data-lines]");
    this.mapCanvas = panel.querySelector("[data-maps]");
    this.readout = panel.querySelector("[data-readout]");
    this.showReadout = throttle(() => this.updateReadout(), 250);
    this.layers = [];
    this.maps = null;
    this.tile = new TinyImage(28);
    this.dirtyLines = true;
    this.dirtyMaps = true;
  }

  get dirty() {
    return this.dirtyLines || this.dirtyMaps;
  }

  reset() {
    this.layers = [];
    this.maps = null;
    this.dirtyLines = this.dirtyMaps = true;
  }

  /** A hello frame's history: per point, the mean weight-gradient norm of every layer. */
  addHistory(history) {
    history.gradient_norms.forEach((norms, i) => {
      const batch = history.first_batch + i * history.stride;
      this.addGradients(batch, norms.map((weight_norm) => ({ weight_norm })));
    });
  }

  /** Per-layer gradient sizes of mini-batch `batch`: [{weight_norm, bias_norm, mean_abs}]. */
  addGradients(batch, perLayer) {
    perLayer.forEach((stats, layer) => {
      if (!this.layers[layer]) this.layers[layer] = new BucketSeries();
      const series = this.layers[layer];
      const norm = stats.weight_norm;
      if (norm === null || norm === undefined) return;
      if (series.lastX === null || batch > series.lastX) series.add(batch, norm);
    });
    this.dirtyLines = true;
  }

  /** `maps`: {rows, values} with row j = dC/dW1[j, :] (784 floats); `scale`: largest |value|. */
  setMaps(maps, scale) {
    this.maps = maps ? { values: maps.values, count: maps.rows, scale } : null;
    this.dirtyMaps = true;
  }

  render() {
    if (this.dirtyLines) this.renderLines();
    if (this.dirtyMaps) this.renderMaps();
    this.dirtyLines = this.dirtyMaps = false;
  }

  renderLines() {
    const fitted = fitCanvas(this.lineCanvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    const size = chartFont(this.lineCanvas);
    ctx.clearRect(0, 0, width, height);
    ctx.font = font(size);
    const box = { left: size * 4, right: width - size * 5, top: size * 0.8, bottom: height - size * 2.6 };
    const live = this.layers.filter((s) => s && s.length > 0);
    let lo = 1e-3;
    let hi = 10;
    if (live.length) {
      lo = 10 ** Math.floor(Math.log10(Math.min(...live.map((s) => s.yMinPositive))));
      hi = 10 ** Math.ceil(Math.log10(Math.max(...live.map((s) => s.yMax))));
      if (hi <= lo) hi = lo * 10;
    }
    const lastX = Math.max(10, ...live.map((s) => s.lastX));
    const xMax = niceCeil(lastX + 1);
    const x = (b) => box.left + (b / xMax) * (box.right - box.left);
    const span = Math.log10(hi) - Math.log10(lo);
    const y = (v) =>
      box.bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * (box.bottom - box.top);
    drawValueGrid(ctx, box, y, logTicks(lo, hi), size);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    // About one tick label per five characters' width, so they never crowd.
    const xTicks = niceTicks(0, xMax, Math.max(2, Math.floor((box.right - box.left) / (size * 5))));
    for (const tick of xTicks) ctx.fillText(formatTick(tick), x(tick), box.bottom + size * 0.3);
    ctx.fillText("mini-batches trained", (box.left + box.right) / 2, box.bottom + size * 1.4);
    ctx.save();
    ctx.translate(size * 0.9, (box.top + box.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("‖dC/dW‖ (log)", 0, -size * 0.6);
    ctx.restore();
    const labels = this.layers.map((series, layer) => this.drawLayer(ctx, series, layer, x, y, size));
    drawLabels(ctx, labels.filter(Boolean), box, size);
    this.showReadout();
  }

  /** One layer's line: raw points thin, a running mean bold; returns where its label goes. */
  drawLayer(ctx, series, layer, x, y, size) {
    if (!series || series.length === 0) return null;
    // Layers differ by dash pattern and a direct label, not by hue: colour is kept for sign.
    const colour = layer % 2 === 0 ? cssVar("--series-bold") : cssVar("--series-alt");
    // The raw values as a light band (one bar per pixel column), the trend drawn over it.
    const columns = [];
    forEachColumn(series, x, (px, min, max, mean) => columns.push({ px, min, max, mean }));
    ctx.globalAlpha = 0.5;
    const span = columns[columns.length - 1].px - columns[0].px;
    if (columns.length > 1 && span / columns.length > 2) {
      ctx.strokeStyle = cssVar("--series-thin");
      ctx.lineWidth = 1;
      strokePath(ctx, columns.map(({ px, mean }) => [px, y(mean)]));
    } else {
      ctx.fillStyle = cssVar("--series-thin");
      for (const { px, min, max } of columns) {
        const top = y(max);
        ctx.fillRect(px, top, 1, Math.max(1, y(min) - top));
      }
    }
    ctx.globalAlpha = 1;
    // A running mean in log space (the axis is logarithmic) shows the trend through the noise.
    let smooth = null;
    const trend = columns.map(({ px, mean }) => {
      const logV = Math.log10(Math.max(mean, 1e-12));
      smooth = smooth === null ? logV : smooth + 0.15 * (logV - smooth);
      return [px, y(10 ** smooth)];
    });
    ctx.strokeStyle = colour;
    ctx.lineWidth = Math.max(3, size / 5);
    ctx.setLineDash(DASHES[layer % DASHES.length].map((d) => d * (size / 13)));
    strokePath(ctx, trend);
    ctx.setLineDash([]);
    const [endX, endY] = trend[trend.length - 1];
    return { text: `layer ${layer + 1}`, x: endX + size * 0.4, y: endY, colour };
  }

  renderMaps() {
    const fitted = fitCanvas(this.mapCanvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    if (!this.maps) return;
    const { values, count, scale } = this.maps;
    if (!(scale > 0)) return;
    const gap = 3;
    const { columns, side } = gridFor(count, width, height, gap);
    const grid = { x: (width - columns * (side + gap) + gap) / 2, y: 0 };
    for (let j = 0; j < count; j++) {
      const cx = grid.x + (j % columns) * (side + gap);
      const cy = grid.y + Math.floor(j / columns) * (side + gap);
      drawWeightChange(ctx, this.tile, values.subarray(j * 784, (j + 1) * 784), cx, cy, side, scale);
    }
  }

  updateReadout() {
    if (!this.readout) return;
    const parts = this.layers
      .map((s, i) => (s && s.length ? `layer ${i + 1} ${formatTick(s.lastY)}` : null))
      .filter(Boolean);
    this.readout.textContent = parts.length
      ? `‖dC/dW‖, latest batch: ${parts.join(" · ")}`
      : "gradient size: no mini-batch trained yet";
  }
}

/**
 * One first-layer neuron's 784 weight gradients as the 28x28 change a step makes to its weights
 * (−gradient, as the nudge bars show change): blue up, orange down, full colour at ±`scale`.
 */
export function drawWeightChange(ctx, tile, gradient, x, y, side, scale) {
  for (let p = 0; p < gradient.length; p++) weightChange[p] = -gradient[p];
  paintDiverging(tile.image, weightChange, scale || 1);
  tile.drawTo(ctx, x, y, side);
}

function strokePath(ctx, points) {
  ctx.beginPath();
  points.forEach(([px, py], i) => (i === 0 ? ctx.moveTo(px, py) : ctx.lineTo(px, py)));
  ctx.stroke();
}

/** Line-end labels, pushed apart vertically so that they never overlap. */
function drawLabels(ctx, labels, box, size) {
  const gap = size * 1.15;
  labels.sort((a, b) => a.y - b.y);
  for (let i = 0; i < labels.length; i++) {
    const above = i > 0 ? labels[i - 1].y + gap : box.top + size / 2;
    labels[i].y = Math.max(labels[i].y, above);
  }
  for (let i = labels.length - 1; i >= 0; i--) {
    const below = i < labels.length - 1 ? labels[i + 1].y - gap : box.bottom - size / 2;
    labels[i].y = Math.min(labels[i].y, below);
  }
  ctx.font = font(size, 600);
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (const label of labels) {
    ctx.fillStyle = label.colour;
    ctx.fillText(label.text, Math.min(label.x, box.right + size * 0.4), label.y);
  }
}

/** The largest square tiles that fit `count` maps into width × height, at most `most` px. */
export function gridFor(count, width, height, gap, most = 96) {
  let best = { columns: 1, side: 0 };
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const side = Math.floor(Math.min((width - gap * (columns - 1)) / columns, (height - gap * (rows - 1)) / rows));
    if (side > best.side) best = { columns, side };
  }
  best.side = Math.min(best.side, most);
  return best;
}
