// The runs page's comparison: the ticked runs' cost curves laid over each other (x: examples
// seen or seconds trained, either axis logarithmic on request) and their test accuracy after
// each epoch, every run in its own colour and dash (palette.js), named in one legend. A run
// here is {id, style: {colour, dash}, detail: GET /api/runs/{id}}.

import { chartFont, cssVar, drawValueGrid, fitCanvas, font } from "./canvas.js";
import { lineSample } from "./line-sample.js";
import { axis, axisEnd, decadeAxis, formatTick, niceCeil, niceTicks } from "./series.js";
import { percent } from "./runs-table.js";

// The bold line averages about AVERAGE_WINDOW mini-batches, as the live page's does, but never
// more than a SMOOTHEST share of a run's points, so that a short run keeps its shape.
const AVERAGE_WINDOW = 100;
const SMOOTHEST = 1 / 15;
const X_LABELS = { examples_seen: "examples seen", seconds: "seconds of training" };

/** Scale the dash pattern with the line so it reads the same at any width. */
function setDash(ctx, dash, width) {
  ctx.setLineDash(dash.map((d) => d * width));
}

function strokePoints(ctx, points) {
  ctx.beginPath();
  let drawing = false;
  for (const [x, y] of points) {
    if (!Number.isFinite(y)) {
      drawing = false;
      continue;
    }
    if (drawing) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    drawing = true;
  }
  ctx.stroke();
}

/** The mean of the `window` points centred on each point (null where none is finite): the
 *  curve's shape without each mini-batch's noise, and without the lag of a trailing mean. */
function smoothed(values, window) {
  const sums = [0];
  const counts = [0];
  for (const value of values) {
    const finite = Number.isFinite(value);
    sums.push(sums.at(-1) + (finite ? value : 0));
    counts.push(counts.at(-1) + (finite ? 1 : 0));
  }
  const half = Math.floor(window / 2);
  return values.map((_, i) => {
    const from = Math.max(0, i - half);
    const to = Math.min(values.length, i + half + 1);
    const count = counts[to] - counts[from];
    return count ? (sums[to] - sums[from]) / count : null;
  });
}

function chartBox(width, height, size) {
  return { left: size * 4, right: width - size * 1.2, top: size * 0.8, bottom: height - size * 2.7 };
}

function drawXAxis(ctx, box, x, label, size) {
  ctx.fillStyle = cssVar("--muted");
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const count = Math.max(2, Math.min(6, Math.floor((box.right - box.left) / (size * 5))));
  for (const tick of x.ticks(count)) ctx.fillText(formatTick(tick), x(tick), box.bottom + size * 0.3);
  ctx.fillText(label, (box.left + box.right) / 2, box.bottom + size * 1.45);
}

function drawYLabel(ctx, box, label, size) {
  ctx.save();
  ctx.fillStyle = cssVar("--muted");
  ctx.textAlign = "center";
  ctx.translate(size * 0.9, (box.top + box.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(label, 0, -size * 0.6);
  ctx.restore();
}

export class CostOverlay {
  constructor(canvas) {
    this.canvas = canvas;
    this.runs = [];
    this.xField = "examples_seen";
    this.logX = false;
    this.logCost = false;
    this.dirty = true;
  }

  setRuns(runs) {
    this.runs = runs;
    this.dirty = true;
  }

  setAxes({ xField = this.xField, logX = this.logX, logCost = this.logCost }) {
    Object.assign(this, { xField, logX, logCost });
    this.dirty = true;
  }

  render() {
    this.dirty = false;
    const fitted = fitCanvas(this.canvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    const curves = this.runs.map((run) => this.curve(run)).filter((curve) => curve.xs.length > 0);
    if (curves.length === 0) return;
    const size = chartFont(this.canvas);
    ctx.font = font(size);
    const box = chartBox(width, height, size);
    const x = this.xAxis(curves, box);
    const y = this.costAxis(curves, box);
    drawValueGrid(ctx, box, y, y.ticks(4), size);
    drawXAxis(ctx, box, x, X_LABELS[this.xField] + (this.logX ? " (log scale)" : ""), size);
    drawYLabel(ctx, box, this.logCost ? "cost (log scale)" : "cost", size);
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top - size * 0.5, box.right - box.left, box.bottom - box.top + size * 0.5);
    ctx.clip();
    for (const curve of curves) this.drawRaw(ctx, curve, x, y);
    for (const curve of curves) this.drawTrend(ctx, curve, x, y, size);
    ctx.restore();
  }

  /** One run's points: x as chosen, the cost as stored, and its moving average. */
  curve(run) {
    const costs = run.detail.costs;
    const xs = costs[this.xField];
    const points = costs.cost.length;
    const window = Math.max(1, Math.min(Math.round(AVERAGE_WINDOW / costs.stride), Math.ceil(points * SMOOTHEST)));
    return { run, xs, raw: costs.cost, trend: smoothed(costs.cost, window), smoothed: window > 1 };
  }

  xAxis(curves, box) {
    const hi = Math.max(...curves.map((curve) => curve.xs[curve.xs.length - 1]), 1e-9);
    if (!this.logX) return axis(0, axisEnd(hi), box.left, box.right, false);
    const lo = Math.min(...curves.map((curve) => curve.xs.find((v) => v > 0) ?? hi));
    return decadeAxis(lo, hi, box.left, box.right);
  }

  costAxis(curves, box) {
    const finite = curves.flatMap((curve) => curve.raw.filter(Number.isFinite));
    const hi = Math.max(...finite, 1e-9);
    if (!this.logCost) return axis(0, niceCeil(hi), box.bottom, box.top, false);
    const lo = Math.min(...finite.filter((v) => v > 0), hi);
    return decadeAxis(lo, hi, box.bottom, box.top);
  }

  /** Each mini-batch as measured: thin and faint, so the trends over it stay readable. */
  drawRaw(ctx, curve, x, y) {
    if (!curve.smoothed) return;
    ctx.globalAlpha = 0.28;
    ctx.strokeStyle = curve.run.style.colour;
    ctx.lineWidth = parseFloat(cssVar("--thin-line")) || 1;
    ctx.setLineDash([]);
    strokePoints(ctx, curve.xs.map((v, i) => [x(v), curve.raw[i] === null ? NaN : y(curve.raw[i])]));
    ctx.globalAlpha = 1;
  }

  drawTrend(ctx, curve, x, y, size) {
    const width = Math.max(3, size / 5);
    ctx.strokeStyle = curve.run.style.colour;
    ctx.lineWidth = width;
    ctx.lineJoin = "round";
    setDash(ctx, curve.run.style.dash, width);
    strokePoints(ctx, curve.xs.map((v, i) => [x(v), curve.trend[i] === null ? NaN : y(curve.trend[i])]));
    ctx.setLineDash([]);
  }
}

export class AccuracyChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.runs = [];
    this.dirty = true;
  }

  setRuns(runs) {
    this.runs = runs;
    this.dirty = true;
  }

  render() {
    this.dirty = false;
    const fitted = fitCanvas(this.canvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    const runs = this.runs.filter((run) => run.detail.evals.length > 0);
    if (runs.length === 0) return;
    const size = chartFont(this.canvas);
    ctx.font = font(size);
    const box = chartBox(width, height, size);
    const lastEpoch = Math.max(...runs.map((run) => run.detail.evals.at(-1).epoch));
    const x = axis(0, Math.max(1, lastEpoch), box.left + size * 0.5, box.right - size * 0.5, false);
    x.ticks = (count) => niceTicks(0, Math.max(1, lastEpoch), count).filter(Number.isInteger);
    const worst = Math.min(...runs.flatMap((run) => run.detail.evals.map((e) => e.accuracy)));
    const lo = Math.max(0, Math.floor(worst * 10 - 0.5) / 10);
    const y = axis(lo, 1, box.bottom, box.top, false);
    this.drawPercentGrid(ctx, box, y, lo, size);
    drawXAxis(ctx, box, x, "epochs trained", size);
    drawYLabel(ctx, box, "test digits right", size);
    for (const run of runs) this.drawRun(ctx, run, x, y, size);
  }

  drawPercentGrid(ctx, box, y, lo, size) {
    ctx.strokeStyle = cssVar("--grid");
    ctx.fillStyle = cssVar("--muted");
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const tick of niceTicks(lo, 1, 4)) {
      const ty = Math.round(y(tick)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(box.left, ty);
      ctx.lineTo(box.right, ty);
      ctx.stroke();
      ctx.fillText(`${Math.round(tick * 100)}%`, box.left - size * 0.4, ty);
    }
  }

  drawRun(ctx, run, x, y, size) {
    const width = Math.max(2.5, size / 6);
    const points = run.detail.evals.map((e) => [x(e.epoch), y(e.accuracy)]);
    ctx.strokeStyle = run.style.colour;
    ctx.lineWidth = width;
    ctx.lineJoin = "round";
    setDash(ctx, run.style.dash, width);
    strokePoints(ctx, points);
    ctx.setLineDash([]);
    const radius = Math.max(4, size / 3.2);
    for (const [px, py] of points) {
      ctx.beginPath();
      ctx.arc(px, py, radius, 0, 2 * Math.PI);
      ctx.fillStyle = cssVar("--panel");
      ctx.fill();
      ctx.lineWidth = 2.5;
      ctx.stroke();
    }
  }
}

/** The legend under both charts: each ticked run's line, name and last test accuracy. */
export function showLegend(list, runs, onPick) {
  list.replaceChildren(
    ...runs.map((run) => {
      const item = document.createElement("li");
      item.title = `${run.detail.name}: click to replay it`;
      item.append(lineSample(run.style), textSpan("legend-name", run.detail.name));
      item.append(textSpan("legend-value", percent(run.detail.test_accuracy)));
      item.addEventListener("click", () => onPick(run.id));
      return item;
    }),
  );
}

function textSpan(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}
