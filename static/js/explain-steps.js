// Explain mode's stage: each step of the walk-through drawn with the example's own numbers.
// Neurons, nudge bars, digits and weight-change maps are the network and gradient panels' own
// drawing, so a colour or a bar means the same here as on the board.

import { cssVar, font } from "./canvas.js";
import { fixed, signed } from "./explain-captions.js";
import { brightness, columnTitle, layerName, strongestNudge } from "./explain-trace.js";
import { drawWeightChange } from "./gradients.js";
import { drawDigit, drawLabelRing, drawNeuron, drawNudgeBar } from "./network.js";
import { signColour } from "./palette.js";

const MAX_SHOWN = 16; // neurons per column; a wider layer shows its most telling ones
const MAX_TILES = 16; // first-layer gradient images in step 5 (8 per side in step 6)

/**
 * Draw step `step` (1..EXPLAIN_STEPS) of `scene` on `ctx`, `width` × `height` CSS pixels with
 * type of `size` pixels. `scene`: {trace (prepared), neuron, lesson, reveal (layers of the
 * forward pass shown so far), presenter}; `tile`: a TinyImage to paint 28x28 images with.
 */
export function drawStep(step, ctx, { width, height, size, tile }, scene) {
  STEPS[step - 1](new Painter(ctx, width, height, size, tile), scene);
}

/** The stage's canvas in CSS pixels, with the page's colours and a base type size. */
class Painter {
  constructor(ctx, width, height, size, tile) {
    Object.assign(this, { ctx, width, height, size, tile });
    this.fg = cssVar("--fg");
    this.muted = cssVar("--muted");
    this.grid = cssVar("--grid-strong");
  }

  /** Draw `value` at (x, y); returns its width. */
  text(value, x, y, options = {}) {
    const { size = this.size, weight = 400, align = "left", base = "middle", colour = this.fg } = options;
    const ctx = this.ctx;
    ctx.font = font(size, weight);
    ctx.fillStyle = colour;
    ctx.textAlign = align;
    ctx.textBaseline = base;
    ctx.fillText(value, x, y);
    return ctx.measureText(value).width;
  }

  digit(pixels, x, y, side) {
    drawDigit(this.ctx, this.tile, pixels, x, y, side);
  }

  /** A neuron as bright as `level`; `strong` rings the one the step is about. The rings are
   *  heavier than the board's: the stage is larger. */
  neuron(x, y, r, level, strong = false) {
    const ringWidth = r <= 5 ? 1 : strong ? 3 : 2;
    drawNeuron(this.ctx, x, y, r, level, strong ? { ring: this.fg, ringWidth } : { ringWidth });
  }

  /** A nudge bar centred on `x`: up (blue) for positive `v`, down (orange) for negative. */
  vbar(x, y, v, length, width) {
    drawNudgeBar(this.ctx, x - width / 2, y, v, length, width);
  }

  /** A horizontal bar from `x`: right (blue) for positive, left (orange) for negative. */
  hbar(x, y, v, length, height) {
    const w = Math.max(1.5, Math.abs(v) * length);
    this.ctx.fillStyle = signColour(v);
    this.ctx.fillRect(v >= 0 ? x : x - w, y - height / 2, w, height);
  }

  line(x0, y0, x1, y1, colour, width) {
    const ctx = this.ctx;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }
}

/** `count` points spread down a column at `x` between `top` and `bottom`. */
function column(count, x, top, bottom, maxRadius) {
  const spacing = Math.min((bottom - top) / count, maxRadius * 3);
  const radius = Math.max(2, Math.min(spacing * 0.36, maxRadius));
  const first = (top + bottom) / 2 - (spacing * (count - 1)) / 2;
  const points = Array.from({ length: count }, (_, i) => ({ x, y: first + i * spacing }));
  return { radius, spacing, points };
}

/** Which neurons of a layer to draw: all, or the MAX_SHOWN with the largest `score`, in order. */
function shown(count, score, limit = MAX_SHOWN) {
  const all = Array.from({ length: count }, (_, i) => i);
  if (count <= limit) return all;
  return all
    .sort((a, b) => score(b) - score(a))
    .slice(0, limit)
    .sort((a, b) => a - b);
}

function largest(values) {
  let peak = 0;
  for (const v of values) peak = Math.max(peak, Math.abs(v));
  return peak || 1;
}

/** The example at the left: its 28x28 pixels and what it is. */
function drawExample(p, trace, x, top, side) {
  p.digit(trace.pixels, x, top, side);
  p.text(`a ${trace.label}`, x + side / 2, top + side + p.size * 0.9, { align: "center", weight: 700 });
}

function outputLabels(p, trace, col, values) {
  const s = p.size;
  col.points.forEach(({ x, y }, digit) => {
    const strong = digit === trace.label;
    const left = x + col.radius + s * 0.5;
    const textSize = Math.min(s * 1.05, col.spacing * 0.75);
    p.text(String(digit), left, y, { size: textSize, weight: strong ? 700 : 500, colour: strong ? p.fg : p.muted });
    p.text(fixed(values[digit]), left + textSize * 1.1, y, {
      size: textSize * 0.85,
      weight: digit === trace.prediction ? 700 : 400,
      colour: digit === trace.prediction ? p.fg : p.muted,
    });
  });
}

// Step 1: the forward pass, one layer after the other.
function drawForward(p, { trace, reveal }) {
  const s = p.size;
  const top = s * 2;
  const bottom = p.height - s * 0.6;
  const side = Math.min((bottom - top) * 0.6, p.width * 0.2);
  const left = s * 0.5;
  drawExample(p, trace, left, (top + bottom) / 2 - side / 2, side);
  p.text("input: 784 pixels", left + side / 2, s * 0.7, { align: "center", colour: p.muted });
  const layers = trace.layers.length;
  const x0 = left + side + p.width * 0.1;
  const x1 = p.width - s * 5;
  let previous = [{ x: left + side, y: (top + bottom) / 2 }];
  for (let layer = 0; layer < layers; layer++) {
    const appear = Math.max(0, Math.min(1, reveal - layer));
    if (appear <= 0) break;
    const values = trace.layers[layer].activations;
    const picks = shown(values.length, (k) => values[k]);
    const x = layers === 1 ? x1 : x0 + ((x1 - x0) * layer) / (layers - 1);
    const col = column(picks.length, x, top, bottom, Math.min(18, s * 0.9));
    const alpha = 0.12 * appear;
    const faint = `rgba(125,131,145,${alpha})`;
    for (const a of previous) for (const b of col.points) p.line(a.x, a.y, b.x - col.radius, b.y, faint, 1);
    const bright = brightness(trace, layer);
    p.ctx.globalAlpha = appear;
    col.points.forEach(({ x: cx, y }, i) => p.neuron(cx, y, col.radius, bright(picks[i])));
    p.text(columnTitle(trace, layer, picks.length), x, s * 0.7, { align: "center", colour: p.muted });
    if (layer === layers - 1) {
      outputLabels(p, trace, col, values);
      const ring = col.points[trace.label];
      drawLabelRing(p.ctx, ring.x, ring.y, col.radius);
    }
    p.ctx.globalAlpha = 1;
    previous = col.points.map(({ x: cx, y }) => ({ x: cx + col.radius, y }));
  }
}

// Step 2: the cost, and the change each output should make (up for the right digit).
function drawCost(p, { trace }) {
  const s = p.size;
  const output = trace.layers.at(-1).activations;
  const side = Math.min(p.height * 0.42, p.width * 0.17);
  drawExample(p, trace, s * 0.5, s * 0.5, side);
  const costX = s * 0.5;
  const costY = s * 0.5 + side + s * 2.4;
  p.text("cost of this example", costX, costY, { colour: p.muted, size: s * 0.9 });
  p.text(fixed(trace.cost, 3), costX, costY + s * 1.5, { size: s * 2, weight: 700 });
  const formula = trace.loss === "mse" ? "½ Σ (output − target)²" : "− log (output of the right digit)";
  p.text(formula, costX, costY + s * 3, { colour: p.muted, size: s * 0.8 });
  p.text("bars: how much each", costX, costY + s * 4.6, { colour: p.muted, size: s * 0.8 });
  p.text("output should change", costX, costY + s * 5.6, { colour: p.muted, size: s * 0.8 });

  const left = Math.max(side, p.ctx.measureText(formula).width) + s * 2;
  const right = p.width - s * 0.5;
  const pitch = (right - left) / 10;
  const circleY = s * 2.6;
  const radius = Math.min(pitch * 0.32, s * 1.1);
  // The bars share one scale: the space between the output values and the bottom, split at
  // the axis in proportion to the largest wish up and the largest wish down.
  const wishes = trace.target.map((t, digit) => t - output[digit]);
  const up = Math.max(0.05, ...wishes);
  const down = Math.max(0.05, ...wishes.map((w) => -w));
  const regionTop = circleY + radius + s * 2.6;
  const regionBottom = p.height - s * 1.4;
  const unit = (regionBottom - regionTop) / (up + down);
  const axis = regionTop + up * unit;
  p.line(left, axis, right, axis, p.grid, 1.5);
  for (let digit = 0; digit < 10; digit++) {
    const x = left + pitch * (digit + 0.5);
    const strong = digit === trace.label;
    p.text(String(digit), x, s * 0.7, { align: "center", weight: strong ? 700 : 500, colour: strong ? p.fg : p.muted });
    p.neuron(x, circleY, radius, output[digit], strong);
    p.text(fixed(output[digit]), x, circleY + radius + s * 0.8, { align: "center", size: s * 0.85, colour: p.muted });
    const wish = wishes[digit];
    p.vbar(x, axis, wish, unit, Math.min(pitch * 0.45, s * 1.4));
    const end = axis - wish * unit;
    p.text(signed(wish), x, wish >= 0 ? Math.min(end, axis - 2) - s * 0.6 : Math.max(end, axis + 2) + s * 0.6, {
      align: "center",
      size: s * 0.8,
      weight: strong ? 700 : 400,
    });
  }
}

// Step 3: one output neuron's bias, incoming weights and the previous layer's activations.
function drawLevers(p, { trace, neuron }) {
  const s = p.size;
  const L = trace.layers.length - 1;
  const a = trace.layers[L - 1].activations;
  const n = a.length;
  const weights = trace.outputWeights;
  const w = (k) => weights.values[neuron * weights.cols + k];
  const delta = trace.layers[L].deltas[neuron];
  const picks = shown(n, (k) => a[k]);
  const brightest = new Set(shown(picks.length, (i) => a[picks[i]], 3).map((i) => picks[i]));
  const top = s * 2.4;
  const bottom = p.height - s * 0.8;
  const barArea = Math.min(p.width * 0.14, s * 6);
  const xa = s * 0.5 + barArea / 2; // ③ activation changes
  const xw = xa + barArea + s; // ② weight changes
  const xn = xw + barArea / 2 + s * 1.6; // the previous layer
  const xo = Math.min(p.width * 0.62, xn + p.width * 0.3);
  const col = column(picks.length, xn, top, bottom, Math.min(16, s * 0.8));
  const weightWish = picks.map((k) => -a[k] * delta);
  const activationWish = picks.map((k) => -w(k) * delta);
  const wPeak = largest(weightWish);
  const aPeak = largest(activationWish);
  const wMax = largest(picks.map(w));
  const outR = Math.min(s * 1.6, (bottom - top) * 0.12);
  const oy = (top + bottom) / 2;
  col.points.forEach(({ x, y }, i) => {
    const k = picks[i];
    const strong = brightest.has(k);
    const colour = signColour(w(k), strong ? 0.95 : 0.28);
    p.line(x + col.radius, y, xo - outR, oy, colour, Math.max(1, (Math.abs(w(k)) / wMax) * (strong ? 5 : 3)));
  });
  const barH = Math.max(2, Math.min(col.spacing * 0.55, s * 0.7));
  col.points.forEach(({ x, y }, i) => {
    const k = picks[i];
    const strong = brightest.has(k);
    p.neuron(x, y, col.radius, brightness(trace, L - 1)(k), strong);
    p.hbar(xw, y, weightWish[i] / wPeak, barArea / 2 - 2, barH);
    p.hbar(xa, y, activationWish[i] / aPeak, barArea / 2 - 2, barH);
  });
  for (const x of [xa, xw]) p.line(x, top - s * 0.3, x, bottom, p.grid, 1);
  p.text("③ change in", xa, s * 0.6, { align: "center", size: s * 0.8, colour: p.muted });
  p.text("activation", xa, s * 1.5, { align: "center", size: s * 0.8, colour: p.muted });
  p.text("② change in", xw, s * 0.6, { align: "center", size: s * 0.8, colour: p.muted });
  p.text("weight", xw, s * 1.5, { align: "center", size: s * 0.8, colour: p.muted });
  p.text(columnTitle(trace, L - 1, picks.length), xn - col.radius, s * 1.5, { size: s * 0.8, colour: p.muted });

  const out = trace.layers[L].activations[neuron];
  p.neuron(xo, oy, outR, out, true);
  p.text(String(neuron), xo, oy - outR - s * 0.8, { align: "center", weight: 700, size: s * 1.2 });
  const wish = -delta;
  p.vbar(xo + outR + s * 0.6, oy, wish / Math.abs(wish || 1), outR, s * 0.5);
  const tx = xo + outR + s * 1.4;
  const bias = trace.output_biases[neuron];
  const lines = [
    [`output ${neuron} = ${fixed(out)}`, 700, p.fg],
    [`target ${trace.target[neuron]}: ${aim(trace.target[neuron] - out)}`, 400, p.muted],
    ["", 400, p.muted],
    [`① bias ${signed(bias)}`, 700, p.fg],
    [`   wants ${signed(-trace.layers[L].bias_gradient[neuron], 3)}`, 400, p.muted],
    ["② weights from bright", 700, p.fg],
    ["   neurons matter most", 400, p.muted],
    ["③ activations, as their", 700, p.fg],
    ["   weights say", 400, p.muted],
  ];
  const step = Math.min(s * 1.45, (bottom - top) / lines.length);
  const first = oy - (step * (lines.length - 1)) / 2;
  const size = Math.min(s * 1.05, step * 0.8, (p.width - tx) / 13);
  lines.forEach(([line, weight, colour], i) => p.text(line, tx, first + i * step, { size, weight, colour }));
}

function aim(gap) {
  if (Math.abs(gap) < 0.01) return "it is nearly there";
  return `it should go ${gap > 0 ? "up" : "down"}`;
}

// Step 4: every output's wish, summed through the weights into the layer before.
function drawBackwards(p, { trace }) {
  const s = p.size;
  const L = trace.layers.length - 1;
  const previous = trace.layers[L - 1];
  const nudges = previous.nudges;
  const deltas = trace.layers[L].deltas;
  const weights = trace.outputWeights;
  const { index: featured } = strongestNudge(trace);
  const picks = shown(nudges.length, (k) => Math.abs(nudges[k]));
  const top = s * 2.4;
  const bottom = p.height - s * 0.6;
  const xo = p.width - s * 3.2;
  const xh = Math.max(p.width * 0.5, p.width - s * 22);
  const hidden = column(picks.length, xh, top, bottom, Math.min(16, s * 0.8));
  const outputs = column(10, xo, top, bottom, Math.min(16, s * 0.8));
  const term = (j, k) => -weights.values[j * weights.cols + k] * deltas[j];
  let termPeak = 0;
  for (let j = 0; j < 10; j++) for (const k of picks) termPeak = Math.max(termPeak, Math.abs(term(j, k)));
  const draw = (highlight) => {
    hidden.points.forEach((a, i) => {
      const k = picks[i];
      if ((k === featured) !== highlight) return;
      outputs.points.forEach((b, j) => {
        const t = term(j, k) / (termPeak || 1);
        const alpha = highlight ? 0.25 + 0.7 * Math.abs(t) : 0.05 + 0.3 * Math.abs(t);
        const width = 1 + (highlight ? 4 : 2) * Math.abs(t);
        p.line(a.x + hidden.radius + s * 1.4, a.y, b.x - outputs.radius - s * 0.9, b.y, signColour(t, alpha), width);
      });
    });
  };
  draw(false);
  draw(true);
  const nudgePeak = largest(picks.map((k) => nudges[k]));
  const barW = Math.max(2, Math.min(hidden.radius * 0.7, s * 0.5));
  hidden.points.forEach(({ x, y }, i) => {
    const k = picks[i];
    p.neuron(x, y, hidden.radius, brightness(trace, L - 1)(k), k === featured);
    p.vbar(x + hidden.radius + s * 0.5, y, nudges[k] / nudgePeak, hidden.spacing * 0.48, barW);
  });
  const deltaPeak = largest(deltas);
  outputs.points.forEach(({ x, y }, j) => {
    p.neuron(x, y, outputs.radius, trace.layers[L].activations[j], j === trace.label);
    p.vbar(x - outputs.radius - s * 0.45, y, -deltas[j] / deltaPeak, outputs.spacing * 0.48, barW);
    const size = Math.min(s, outputs.spacing * 0.75);
    p.text(String(j), x + outputs.radius + s * 0.4, y, { size, weight: j === trace.label ? 700 : 400 });
  });
  p.text(columnTitle(trace, L - 1, picks.length), xh, s * 0.8, { align: "center", colour: p.muted, size: s * 0.85 });
  p.text("output", xo, s * 0.8, { align: "center", colour: p.muted, size: s * 0.85 });

  // What the featured neuron's nudge is made of: its largest terms.
  const x = s * 0.5;
  const width = xh - hidden.radius - x - s * 2;
  const total = nudges[featured];
  const rows = previous.contributions[featured].slice(0, 4);
  const rowSize = Math.min(s * 0.95, width / 15);
  let y = top + s * 0.2;
  p.text(`neuron ${featured} of ${layerName(trace, L - 1)}`, x, y, { weight: 700 });
  y += s * 1.3;
  p.text(`wants ${signed(total, 3)}: the sum of`, x, y, { colour: p.muted, size: rowSize });
  y += s * 1.5;
  const axis = x + width * 0.5;
  const reach = width * 0.5 - rowSize * 4;
  const peak = Math.max(...rows.map((c) => Math.abs(c.nudge)), 1e-12);
  p.line(axis, y - rowSize * 0.6, axis, y + rows.length * rowSize * 2.9 - rowSize * 1.2, p.grid, 1);
  for (const c of rows) {
    const wish = c.nudge;
    p.text(`output ${c.neuron}: weight ${signed(c.weight)} × its wish ${signed(-c.delta, 3)}`, x, y, {
      size: rowSize * 0.9,
      colour: p.muted,
    });
    y += rowSize * 1.3;
    p.hbar(axis, y, wish / peak, reach, rowSize * 0.6);
    const end = axis + (wish / peak) * reach;
    p.text(signed(wish, 3), wish >= 0 ? end + rowSize * 0.3 : end - rowSize * 0.3, y, {
      size: rowSize * 0.85,
      weight: 700,
      align: wish >= 0 ? "left" : "right",
    });
    y += rowSize * 1.6;
  }
  p.text("+ the other outputs' smaller terms", x, y, { size: rowSize * 0.85, colour: p.muted });
}

/** A grid of 28x28 maps: −dC/dW1 rows for `picks`, labelled with the neuron's number. */
function drawMaps(p, gradient, picks, x, y, width, height) {
  const s = p.size;
  const count = picks.length;
  let best = { side: 0, cols: 1 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const side = Math.min(width / cols - s * 0.4, height / rows - s * 1.1);
    if (side > best.side) best = { side, cols };
  }
  const { side, cols } = best;
  // One scale for all the squares, so a brighter square is a neuron that should change more.
  const row = (j) => gradient.values.subarray(j * gradient.cols, (j + 1) * gradient.cols);
  const peak = largest(picks.flatMap((j) => Array.from(row(j))));
  const cellW = width / cols;
  const cellH = side + s * 1.1;
  picks.forEach((j, i) => {
    const cx = x + (i % cols) * cellW + (cellW - side) / 2;
    const cy = y + Math.floor(i / cols) * cellH;
    drawWeightChange(p.ctx, p.tile, row(j), cx, cy, side, peak);
    p.text(`#${j}`, cx + side / 2, cy + side + s * 0.5, { align: "center", size: s * 0.7, colour: p.muted });
  });
}

// Step 5: the same rule back to the first layer, whose gradient is one image per neuron.
function drawFirstLayer(p, { trace }) {
  const s = p.size;
  const first = trace.layers[0];
  const picks = shown(first.deltas.length, (j) => Math.abs(first.deltas[j]), MAX_TILES);
  const split = p.width * 0.56;
  const total = first.deltas.length;
  const which = picks.length < total ? ` (the ${picks.length} of ${total} that should change most)` : "";
  p.text(`how each first-layer neuron's 784 weights should change${which}`, 0, s * 0.6, {
    colour: p.muted,
    size: s * 0.8,
  });
  drawMaps(p, trace.gradients[0], picks, 0, s * 1.5, split - s, p.height - s * 1.6);
  const layers = trace.layers.length;
  const top = s * 2.4;
  const bottom = p.height - s * 0.6;
  const x0 = split + s * 2.5;
  const x1 = p.width - s * 2.5;
  const xs = trace.layers.map((_, layer) => (layers === 1 ? x1 : x0 + ((x1 - x0) * layer) / (layers - 1)));
  const note = { align: "center", size: s * 0.8, colour: p.muted };
  trace.layers.forEach((traced, layer) => {
    // The output layer shows its desired change in z, −dC/dz: for cross-entropy its dC/da
    // moves only the right digit.
    const nudges = layer === layers - 1 ? traced.deltas.map((d) => -d) : traced.nudges;
    const chosen = shown(nudges.length, (k) => Math.abs(nudges[k]));
    const col = column(chosen.length, xs[layer], top, bottom, Math.min(14, s * 0.7));
    const peak = largest(chosen.map((k) => nudges[k]));
    const bright = brightness(trace, layer);
    col.points.forEach(({ x, y }, i) => {
      p.neuron(x, y, col.radius, bright(chosen[i]));
      p.vbar(x + col.radius + s * 0.45, y, nudges[chosen[i]] / peak, col.spacing * 0.48, Math.max(2, s * 0.4));
    });
    p.text(layerName(trace, layer), xs[layer], s * 1.4, note);
    if (layer > 0) p.text("←", (xs[layer] + xs[layer - 1]) / 2, s * 1.4, note);
  });
}

// Step 6: this example's gradient beside the mean over a mini-batch.
function drawBatch(p, { trace }) {
  const s = p.size;
  const first = trace.layers[0];
  const picks = shown(first.deltas.length, (j) => Math.abs(first.deltas[j]), 8);
  const half = p.width / 2;
  const heat = Math.min(p.height * 0.22, s * 4.2);
  const gridHeight = p.height - s * 3.6 - heat;
  const sides = [
    {
      x: 0,
      title: `this ${trace.label} alone (cost ${fixed(trace.cost, 3)})`,
      maps: trace.gradients[0],
      out: trace.gradients.at(-1),
    },
    {
      x: half + s * 0.5,
      title: `mean of ${trace.batch_average.size} training digits (cost ${fixed(trace.batch_average.cost, 3)})`,
      maps: trace.batchFirst,
      out: trace.batchOutput,
    },
  ];
  for (const side of sides) {
    const width = half - s * 0.5;
    p.text(side.title, side.x + width / 2, s * 0.6, { align: "center", weight: 700, size: s * 0.85 });
    drawMaps(p, side.maps, picks, side.x, s * 1.5, width, gridHeight);
    const y = p.height - heat - s * 0.2;
    const note = { align: "center", size: s * 0.7, colour: p.muted };
    p.text("output layer's weights (rows: digits 0-9)", side.x + width / 2, y - s * 0.6, note);
    drawHeatmap(p, side.out, side.x + s, y, width - s * 2, heat - s * 0.2);
  }
  p.line(half, s * 1.2, half, p.height - s * 0.2, p.grid, 1.5);
}

/** A small weight-gradient matrix as a heatmap of −dC/dW (blue: should grow). */
function drawHeatmap(p, matrix, x, y, width, height) {
  const peak = largest(matrix.values);
  const cellW = width / matrix.cols;
  const cellH = height / matrix.rows;
  for (let r = 0; r < matrix.rows; r++) {
    for (let c = 0; c < matrix.cols; c++) {
      const v = -matrix.values[r * matrix.cols + c] / peak;
      p.ctx.fillStyle = signColour(v, Math.sqrt(Math.abs(v)));
      p.ctx.fillRect(x + c * cellW, y + r * cellH, Math.ceil(cellW), Math.ceil(cellH));
    }
  }
  p.ctx.strokeStyle = p.grid;
  p.ctx.lineWidth = 1;
  p.ctx.strokeRect(x - 0.5, y - 0.5, width + 1, height + 1);
}

// Step 7: one gradient step on this example; its outputs and cost before and after.
function drawApply(p, { trace, lesson, presenter }) {
  const s = p.size;
  const side = Math.min(p.height * 0.42, p.width * 0.17);
  drawExample(p, trace, s * 0.5, s * 0.5, side);
  const x = s * 0.5;
  let y = s * 0.5 + side + s * 2.4;
  p.text("cost of this example", x, y, { colour: p.muted, size: s * 0.9 });
  if (lesson) {
    y += s * 1.4;
    p.text(`before ${fixed(lesson.cost_before, 3)}`, x, y, { size: s * 1.1 });
    y += s * 1.7;
    p.text(`after ${fixed(lesson.cost_after, 3)}`, x, y, { size: s * 1.5, weight: 700 });
    const change = lesson.cost_after - lesson.cost_before;
    y += s * 1.5;
    p.text(`${signed(change, 3)} with η ${lesson.lr}`, x, y, { size: s * 0.85, colour: signColour(-change) });
  } else {
    y += s * 1.5;
    p.text(fixed(trace.cost, 3), x, y, { size: s * 2, weight: 700 });
    y += s * 1.6;
    p.text(presenter ? "press Apply below" : "waiting for the presenter", x, y, { size: s * 0.85, colour: p.muted });
  }

  const before = lesson ? lesson.output_before : trace.layers.at(-1).activations;
  const after = lesson?.output_after;
  const left = side + s * 3;
  const right = p.width - s * 0.5;
  const pitch = (right - left) / 10;
  const base = p.height - s * 1.6;
  const height = base - s * 2.4;
  const barW = Math.min(pitch * 0.3, s * 1.2);
  p.line(left, base, right, base, p.grid, 1.5);
  for (let digit = 0; digit < 10; digit++) {
    const cx = left + pitch * (digit + 0.5);
    const strong = digit === trace.label;
    p.ctx.fillStyle = p.grid;
    const hb = Math.max(1.5, before[digit] * height);
    p.ctx.fillRect(cx - barW - 1, base - hb, barW, hb);
    if (after) {
      const ha = Math.max(1.5, after[digit] * height);
      p.ctx.fillStyle = signColour(after[digit] - before[digit]);
      p.ctx.fillRect(cx + 1, base - ha, barW, ha);
    }
    const digitText = { align: "center", weight: strong ? 700 : 500, colour: strong ? p.fg : p.muted };
    p.text(String(digit), cx, base + s * 0.8, digitText);
  }
  // The legend: a swatch before each of its words.
  let lx = left;
  const swatch = (colour) => {
    p.ctx.fillStyle = colour;
    p.ctx.fillRect(lx, s * 0.3, s * 0.8, s * 0.8);
    lx += s * 1.2;
  };
  const word = (text) => {
    lx += p.text(text, lx, s * 0.7, { size: s * 0.85, colour: p.muted }) + s * 0.9;
  };
  swatch(p.grid);
  word(lesson ? "outputs before the step" : "outputs now");
  if (after) {
    swatch(signColour(1));
    word("after: went up");
    swatch(signColour(-1));
    word("went down");
  }
}

const STEPS = [drawForward, drawCost, drawLevers, drawBackwards, drawFirstLayer, drawBatch, drawApply];
