// The network view: the probe digit as a 28x28 image, then every layer as a column of neurons
// coloured by activation (dark 0 → bright 1), connections coloured by the sign of their weight
// and drawn thicker and stronger for larger |w|, and beside every neuron an up/down bar for the
// nudge the latest mini-batch wants (−dC/da). The first hidden layer shows each neuron's 784
// incoming weights as a 28x28 image, as in 3Blue1Brown's video, and only its strongest lines.
// Its pieces (a neuron, a nudge bar, a digit) are exported for explain mode to draw alike.

import { TinyImage, chartFont, cssVar, fitCanvas, font } from "./canvas.js";
import { paintDiverging, paintSequential, sequential, signColour } from "./palette.js";
import { throttle } from "./throttle.js";

const MAX_LINES_PER_LAYER = 1500;
const INPUT_LINES = 120; // from the input image, shared out over the first-layer neurons
const LINE_LEVELS = 6;

export class NetworkView {
  constructor(panel) {
    this.canvas = panel.querySelector("canvas");
    this.readout = panel.querySelector("[data-readout]");
    this.showReadout = throttle(() => this.updateReadout(), 250);
    this.model = null; // {layerSizes, activation, weights: [{rows, cols, values, scale}]}
    this.probe = null; // {source, index, label, pixels (784 in 0..1), activations}
    this.nudges = null;
    this.thumb = new TinyImage(28);
    this.dirty = true;
  }

  /** Weights per layer as {rows, cols, values (row-major floats), scale (largest |w|)}. */
  setModel(model) {
    this.model = model;
    this.dirty = true;
  }

  /** The digit to show flowing through: pixels in 0..1 and activations per layer 1..L. */
  setProbe(probe) {
    this.probe = probe;
    this.dirty = true;
  }

  /** The desired change of every activation (−dC/da) per layer 1..L, averaged over the latest
   *  mini-batch. */
  setNudges(nudges) {
    this.nudges = nudges;
    this.dirty = true;
  }

  reset() {
    this.model = null;
    this.probe = null;
    this.nudges = null;
    this.dirty = true;
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    this.showReadout();
    const fitted = fitCanvas(this.canvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    if (!this.model) return;
    const size = chartFont(this.canvas);
    const layout = layoutColumns(this.model.layerSizes, width, height, size);
    ctx.font = font(size);
    this.drawHeadings(ctx, layout, size, width);
    this.drawInputLines(ctx, layout);
    for (let layer = 1; layer < layout.columns.length - 1; layer++) this.drawLines(ctx, layout, layer);
    this.drawInput(ctx, layout);
    this.drawThumbnails(ctx, layout);
    layout.columns.slice(1).forEach((column, i) => this.drawNeurons(ctx, column, i));
    this.drawOutputLabels(ctx, layout, size);
  }

  /** Column titles, nudged right where a wide one would run into its left neighbour, and left
   *  out where one would run off the canvas (a race lane's small view). */
  drawHeadings(ctx, layout, size, canvasWidth) {
    ctx.fillStyle = cssVar("--muted");
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    const sizes = this.model.layerSizes;
    const last = layout.columns.length - 1;
    let freeFrom = 0;
    layout.columns.forEach((column, i) => {
      let text = `hidden ${i} (${sizes[i]})`;
      if (i === 0) text = "input 28×28";
      if (i === last) text = "output";
      const width = ctx.measureText(text).width;
      const x = Math.max(column.centre - width / 2, freeFrom, 0);
      if (x + width > canvasWidth) return;
      ctx.fillText(text, x, 0);
      freeFrom = x + width + size;
    });
    ctx.textBaseline = "alphabetic";
  }

  drawInput(ctx, layout) {
    const { x, y, side } = layout.input;
    drawDigit(ctx, this.thumb, this.probe?.pixels, x, y, side);
  }

  /** First-layer neurons: their 784 incoming weights as a 28x28 image left of the neuron. */
  drawThumbnails(ctx, layout) {
    const column = layout.columns[1];
    if (!column.thumbSide) return;
    const weights = this.model.weights[0];
    for (let j = 0; j < column.points.length; j++) {
      const row = weights.values.subarray(j * 784, (j + 1) * 784);
      let peak = 1e-9;
      for (let p = 0; p < 784; p++) peak = Math.max(peak, Math.abs(row[p]));
      paintDiverging(this.thumb.image, row, peak);
      const { x, y } = thumbPosition(column, j);
      this.thumb.drawTo(ctx, x, y - column.thumbSide / 2, column.thumbSide);
    }
  }

  /** The strongest few weights of each first-layer neuron, from their pixel to the neuron. */
  drawInputLines(ctx, layout) {
    const column = layout.columns[1];
    const weights = this.model.weights[0];
    const { x, y, side } = layout.input;
    const cell = side / 28;
    const lines = [];
    const perNeuron = Math.max(1, Math.min(3, Math.floor(INPUT_LINES / weights.rows)));
    for (let j = 0; j < weights.rows; j++) {
      for (const p of strongest(weights.values, j * 784, 784, perNeuron)) {
        lines.push({
          x0: x + ((p % 28) + 0.5) * cell,
          y0: y + (Math.floor(p / 28) + 0.5) * cell,
          x1: column.thumbSide ? thumbPosition(column, j).x : column.points[j].x - column.radius,
          y1: column.points[j].y,
          value: weights.values[j * 784 + p],
        });
      }
    }
    strokeLines(ctx, lines, weights.scale, column.lineWidth);
  }

  /** All connections from column `layer` to the next, or the strongest MAX_LINES_PER_LAYER. */
  drawLines(ctx, layout, layer) {
    const weights = this.model.weights[layer];
    const from = layout.columns[layer];
    const to = layout.columns[layer + 1];
    const values = weights.values;
    const threshold = lineThreshold(values, weights.scale, MAX_LINES_PER_LAYER);
    const lines = [];
    for (let j = 0; j < weights.rows; j++) {
      for (let i = 0; i < weights.cols; i++) {
        const value = values[j * weights.cols + i];
        if (Math.abs(value) < threshold) continue;
        const a = from.points[i];
        const b = to.points[j];
        lines.push({ x0: a.x + from.radius + from.barGap, y0: a.y, x1: b.x - to.radius, y1: b.y, value });
      }
    }
    strokeLines(ctx, lines, weights.scale, Math.min(from.lineWidth, to.lineWidth));
  }

  /** Layer `layer`'s neurons (0 = the first hidden layer), each with its nudge bar. */
  drawNeurons(ctx, column, layer) {
    const activations = this.probe?.activations?.[layer];
    const nudges = this.nudges?.[layer];
    const isOutput = layer === this.model.layerSizes.length - 2;
    const scale = brightnessScale(this.model.activation, isOutput, activations);
    let nudgePeak = 0;
    if (nudges) for (const n of nudges) nudgePeak = Math.max(nudgePeak, Math.abs(n));
    const ringWidth = column.radius > 6 ? 1.5 : 0.75;
    column.points.forEach(({ x, y }, j) => {
      drawNeuron(ctx, x, y, column.radius, activations ? scale(activations[j]) : null, { ringWidth });
      if (nudges && nudgePeak > 0) {
        const barX = x + column.radius + column.barGap * 0.25;
        drawNudgeBar(ctx, barX, y, nudges[j] / nudgePeak, column.barLength, column.barWidth);
      }
    });
  }

  drawOutputLabels(ctx, layout, size) {
    const column = layout.columns[layout.columns.length - 1];
    const outputs = this.probe?.activations?.[this.model.layerSizes.length - 2];
    const best = outputs ? largestOutput(outputs) : -1;
    ctx.textBaseline = "middle";
    column.points.forEach(({ x, y }, digit) => {
      const left = x + column.radius + column.barGap + column.barWidth;
      ctx.font = font(Math.min(size * 1.25, column.spacing * 0.8), digit === best ? 700 : 500);
      ctx.fillStyle = digit === best ? cssVar("--fg") : cssVar("--muted");
      ctx.textAlign = "left";
      ctx.fillText(String(digit), left, y);
      if (outputs) {
        ctx.font = font(Math.min(size, column.spacing * 0.65), digit === best ? 700 : 400);
        ctx.fillText(formatOutput(outputs[digit]), left + size * 1.1, y);
      }
      if (this.probe && digit === this.probe.label) drawLabelRing(ctx, x, y, column.radius);
    });
  }

  updateReadout() {
    if (!this.readout) return;
    const probe = this.probe;
    if (!this.model || !probe) {
      this.readout.textContent = "waiting for the network…";
      return;
    }
    const outputs = probe.activations?.[this.model.layerSizes.length - 2];
    const parts = [
      probe.source === "drawing"
        ? "showing: your drawing"
        : `showing: test digit #${probe.index} (label ${probe.label})`,
    ];
    const best = outputs ? largestOutput(outputs) : -1;
    if (best >= 0) {
      parts.push(`network says ${best} (output ${formatOutput(outputs[best])} of 1)`);
    } else if (outputs) {
      parts.push("the outputs are not numbers: the network has diverged");
    }
    this.readout.textContent = parts.join(" · ");
  }
}

/** The index of the largest output, or -1 when none is a number (null stands for NaN). */
function largestOutput(outputs) {
  let best = -1;
  outputs.forEach((value, i) => {
    if (Number.isFinite(value) && (best < 0 || value > outputs[best])) best = i;
  });
  return best;
}

function formatOutput(value) {
  return Number.isFinite(value) ? value.toFixed(2) : "–";
}

/** Where every column, neuron and the input image go for these layer sizes in width × height. */
function layoutColumns(layerSizes, width, height, size) {
  const top = size * 1.8;
  const bottom = height - size * 0.5;
  const inputSide = Math.max(28, Math.min(width * 0.17, (bottom - top) * 0.55));
  const input = { x: size * 0.3, y: (top + bottom) / 2 - inputSide / 2, side: inputSide };
  const labelSpace = size * 4.4 + Math.min(18, size) * 2.2;
  const left = input.x + inputSide + width * 0.06;
  const right = width - labelSpace;
  const count = layerSizes.length - 1;
  const columns = [{ centre: input.x + inputSide / 2, points: [] }];
  for (let layer = 1; layer <= count; layer++) {
    // One hidden layer sits a little left of centre; more spread evenly up to the output.
    let t = count === 1 ? 1 : (layer - 1) / (count - 1);
    if (count === 2 && layer === 1) t = 0.4;
    columns.push(placeColumn(layerSizes[layer], left + (right - left) * t, top, bottom, layer === 1));
  }
  // The first hidden layer's thumbnails need room: shift it right by the thumbnail size,
  // and shrink them (or leave them out) where the input image leaves too little space.
  const first = columns[1];
  if (first.thumbSide && count > 2) {
    shiftColumn(first, Math.min(first.thumbSide * 2, ((right - left) / (count - 1)) * 0.4));
  }
  const room = first.points[0].x - first.radius - (input.x + inputSide) - size;
  first.thumbSide = Math.min(first.thumbSide, Math.floor((room - 7) / 2));
  if (first.thumbSide < 8) first.thumbSide = 0;
  return { input, columns };
}

function placeColumn(n, x, top, bottom, withThumbs) {
  const span = bottom - top;
  const minSpacing = 7;
  const subColumns = Math.max(1, Math.ceil((n * minSpacing) / span));
  const perColumn = Math.ceil(n / subColumns);
  const spacing = Math.min(span / perColumn, 64);
  const radius = Math.max(2, Math.min(spacing * 0.36, 18));
  const barGap = radius * 0.6 + 3;
  const pitch = radius * 2 + barGap + 4;
  // Thumbnails alternate between two columns, so each can be almost two rows tall.
  const thumbSide = withThumbs && subColumns === 1 && spacing >= 8 ? Math.min(2 * spacing - 4, 72) : 0;
  const used = perColumn * spacing;
  const points = [];
  for (let j = 0; j < n; j++) {
    const c = Math.floor(j / perColumn);
    const r = j % perColumn;
    points.push({
      x: x + (c - (subColumns - 1) / 2) * pitch,
      y: top + (span - used) / 2 + (r + 0.5) * spacing,
    });
  }
  return {
    centre: x,
    points,
    spacing,
    radius,
    thumbSide,
    barGap,
    barWidth: Math.max(2, radius * 0.45),
    barLength: spacing * 0.48,
    lineWidth: Math.max(0.6, Math.min(3, spacing / 10)),
  };
}

/** Top-left x of neuron j's weight image (centred on its row): even rows near, odd rows far. */
function thumbPosition(column, j) {
  const { x, y } = column.points[j];
  const near = x - column.radius - 4 - column.thumbSide;
  return { x: j % 2 === 0 || column.points.length === 1 ? near : near - column.thumbSide - 3, y };
}

function shiftColumn(column, dx) {
  column.centre += dx;
  for (const point of column.points) point.x += dx;
}

// ---- the pieces, shared with explain mode ---------------------------------------------------

/** Activation → brightness in [0, 1] for a layer with these `activations`: sigmoid and the
 *  outputs as they are, tanh from [−1, 1], ReLU scaled by the layer's largest activation. */
export function brightnessScale(activation, isOutput, activations) {
  if (isOutput || activation === "sigmoid") return (a) => a;
  if (activation === "tanh") return (a) => (a + 1) / 2;
  let peak = 1;
  if (activations) for (const a of activations) peak = Math.max(peak, a);
  return (a) => a / peak;
}

/** A neuron: a circle as bright as `brightness` (0..1; null while unknown) in a ring. */
export function drawNeuron(ctx, x, y, radius, brightness, options = {}) {
  const { ring = cssVar("--neuron-ring"), ringWidth = 1.5 } = options;
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.fillStyle = brightness === null ? cssVar("--panel") : sequential(brightness);
  ctx.fill();
  ctx.strokeStyle = ring;
  ctx.lineWidth = ringWidth;
  ctx.stroke();
}

/** A nudge (−1..1 of the largest shown) as a bar with its left edge at `x`: up from `y` in blue
 *  for "grow", down in orange for "shrink", `length` long at full size. */
export function drawNudgeBar(ctx, x, y, nudge, length, width) {
  const height = Math.max(1.5, Math.abs(nudge) * length);
  ctx.fillStyle = signColour(nudge);
  ctx.fillRect(x, nudge >= 0 ? y - height : y, width, height);
}

/** A 28x28 digit (784 values in 0..1; none: just the frame) drawn `side` pixels square. */
export function drawDigit(ctx, tile, pixels, x, y, side) {
  if (pixels) {
    paintSequential(tile.image, pixels, 1);
    tile.drawTo(ctx, x, y, side);
  }
  ctx.strokeStyle = cssVar("--grid-strong");
  ctx.lineWidth = 1;
  ctx.strokeRect(x - 0.5, y - 0.5, side + 1, side + 1);
}

/** The ring that marks the output neuron of the right digit. */
export function drawLabelRing(ctx, x, y, radius) {
  ctx.strokeStyle = cssVar("--fg");
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(x, y, radius + 3, 0, 2 * Math.PI);
  ctx.stroke();
}

/** Indices of the `k` largest |values[offset + i]| for i < length. */
function strongest(values, offset, length, k) {
  const best = [];
  for (let i = 0; i < length; i++) {
    const magnitude = Math.abs(values[offset + i]);
    if (best.length < k || magnitude > best[best.length - 1].m) {
      best.push({ i, m: magnitude });
      best.sort((a, b) => b.m - a.m);
      if (best.length > k) best.pop();
    }
  }
  return best.map((b) => b.i);
}

/** The smallest |w| that keeps at most `limit` lines, from a 128-bin histogram (O(n), no sort). */
function lineThreshold(values, scale, limit) {
  if (!(scale > 0)) return Infinity;
  const histogram = new Uint32Array(128);
  for (let i = 0; i < values.length; i++) {
    histogram[Math.min(127, Math.floor((Math.abs(values[i]) / scale) * 128))] += 1;
  }
  let kept = 0;
  for (let bin = 127; bin >= 1; bin--) {
    if (kept + histogram[bin] > limit) return ((bin + 1) / 128) * scale;
    kept += histogram[bin];
  }
  return (1 / 128) * scale;
}

/** Stroke lines grouped by sign and strength: a dozen strokes however many lines. */
function strokeLines(ctx, lines, peak, maxWidth) {
  if (!(peak > 0)) return;
  const groups = Array.from({ length: LINE_LEVELS * 2 }, () => []);
  for (const line of lines) {
    const level = Math.min(LINE_LEVELS - 1, Math.floor((Math.abs(line.value) / peak) * LINE_LEVELS));
    groups[level * 2 + (line.value >= 0 ? 0 : 1)].push(line);
  }
  groups.forEach((group, g) => {
    if (group.length === 0) return;
    // Weak weights fade out, so the few strong ones carry the picture.
    const strength = (Math.floor(g / 2) + 1) / LINE_LEVELS;
    ctx.strokeStyle = signColour(g % 2 === 0 ? 1 : -1, 0.04 + 0.86 * strength ** 2);
    ctx.lineWidth = Math.max(0.5, maxWidth * strength);
    ctx.beginPath();
    for (const { x0, y0, x1, y1 } of group) {
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
    }
    ctx.stroke();
  });
}
