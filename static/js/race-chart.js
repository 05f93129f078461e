// The race's cost chart: one line per lane, its cost averaged over its latest
// AVERAGE_EXAMPLES training examples, against examples seen or seconds of training (either
// axis linear or log). Each lane keeps its colour and dash (palette.js) and is named at the end of its
// line, so nobody has to look from a legend to the lines and back.

import { chartFont, cssVar, drawValueGrid, fitCanvas, font } from "./canvas.js";
import { BucketSeries, axis, axisEnd, decadeAxis, formatTick, niceCeil } from "./series.js";

// Enough examples that a lane of batch size 1 draws a line and not a cloud, few enough that
// the line follows the cost closely on an axis of tens of thousands of examples.
const AVERAGE_EXAMPLES = 1000;
export const X_AXES = { examples: "examples seen", seconds: "seconds of training" };
// Seconds are kept in milliseconds: a BucketSeries' first buckets are one x unit wide.
const MS = 1000;

/** One lane's line, by examples seen and by seconds at once, so switching the axis is free. */
class LaneCurve {
  constructor() {
    this.byExamples = new BucketSeries();
    this.byMilliseconds = new BucketSeries();
    this.window = [];
    this.windowSum = 0;
    this.windowExamples = 0;
    this.latest = null;
  }

  /** The mean cost `cost` of `examples` examples (a mini-batch or a history point), the lane
   *  having seen `examplesSeen` examples in `seconds` of training after them. */
  add(examplesSeen, seconds, cost, examples) {
    if (cost === null || !Number.isFinite(cost) || !(examples > 0)) return;
    this.window.push({ sum: cost * examples, examples });
    this.windowSum += cost * examples;
    this.windowExamples += examples;
    while (this.windowExamples - this.window[0].examples >= AVERAGE_EXAMPLES) {
      const dropped = this.window.shift();
      this.windowSum -= dropped.sum;
      this.windowExamples -= dropped.examples;
    }
    this.latest = this.windowSum / this.windowExamples;
    this.byExamples.add(examplesSeen, this.latest);
    this.byMilliseconds.add(seconds * MS, this.latest);
  }
}

export class RaceChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.lanes = []; // {label, style, status, curve}
    this.xAxis = "examples";
    this.logX = false;
    this.logCost = false;
    this.drawnLabels = []; // what the last render wrote at the line ends (for tests)
    this.dirty = true;
  }

  /** The lanes, in order: [{label, style: {colour, dash}}]; every line starts empty. */
  setLanes(lanes) {
    this.lanes = lanes.map(({ label, style }) => ({ label, style, status: null, curve: new LaneCurve() }));
    this.dirty = true;
  }

  /** Lane `lane` starts again (the server reset it: a fresh network). */
  clearLane(lane) {
    this.lanes[lane].curve = new LaneCurve();
    this.dirty = true;
  }

  /** A lane's status; an ended one ("finished", "diverged") says so at its line's end. */
  setStatus(lane, status) {
    if (this.lanes[lane].status === status) return;
    this.lanes[lane].status = status;
    this.dirty = true;
  }

  add(lane, examplesSeen, seconds, cost, examples) {
    this.lanes[lane].curve.add(examplesSeen, seconds, cost, examples);
    this.dirty = true;
  }

  setXAxis(name) {
    this.xAxis = name;
    this.dirty = true;
  }

  /** Either axis logarithmic: {logX, logCost}. */
  setLog({ logX = this.logX, logCost = this.logCost }) {
    Object.assign(this, { logX, logCost });
    this.dirty = true;
  }

  series(lane) {
    return this.xAxis === "seconds" ? lane.curve.byMilliseconds : lane.curve.byExamples;
  }

  render() {
    this.dirty = false;
    this.drawnLabels = [];
    const fitted = fitCanvas(this.canvas);
    if (!fitted || this.lanes.length === 0) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    const size = chartFont(this.canvas);
    const labels = this.lanes.map((lane) => ({ lane, text: labelText(lane) }));
    ctx.font = font(size, 650);
    const labelSpace = Math.max(...labels.map((label) => ctx.measureText(label.text).width)) + size * 1.4;
    ctx.font = font(size);
    const box = { left: size * 4, right: width - labelSpace, top: size * 0.8, bottom: height - size * 2.7 };
    const drawn = this.lanes.filter((lane) => this.series(lane).length > 0);
    const x = this.xScale(drawn, box);
    const y = this.costScale(drawn, box);
    drawValueGrid(ctx, box, y, y.ticks(4), size);
    this.drawXAxis(ctx, box, x, size);
    drawYLabel(ctx, box, this.logCost ? "cost (log scale)" : "cost", size);
    const ends = new Map(drawn.map((lane) => [lane, this.drawLine(ctx, lane, x, y, size)]));
    for (const label of labels) {
      label.end = ends.get(label.lane) ?? null;
      label.y = label.end ? label.end.y : box.top;
    }
    this.drawnLabels = placeEndLabels(ctx, labels, box, width, size);
  }

  /** Examples or seconds (as stored: milliseconds) → canvas x, with the axis's ticks:
   *  linear from 0 to the first round number past the furthest lane, or log between decades. */
  xScale(lanes, box) {
    const unit = this.xAxis === "seconds" ? MS : 1;
    const all = lanes.map((lane) => this.series(lane));
    const hi = Math.max(1e-9, ...all.map((series) => series.lastX / unit));
    let scale;
    if (this.logX && all.length) {
      const lo = Math.min(hi, ...all.map((series) => Math.max(series.firstX / unit, 1e-3)));
      scale = decadeAxis(lo, hi, box.left, box.right);
    } else {
      scale = axis(0, axisEnd(all.length ? hi : 1), box.left, box.right, false);
    }
    const x = (v) => scale(v / unit);
    x.ticks = (count) => scale.ticks(count).map((tick) => tick * unit);
    return x;
  }

  /** Cost → canvas y with its ticks: linear from 0, or log between the extremes' decades. */
  costScale(lanes, box) {
    const all = lanes.map((lane) => this.series(lane));
    const hi = Math.max(1e-9, ...all.map((series) => series.yMax));
    let scale;
    if (this.logCost && all.length) {
      const lo = Math.min(hi, ...all.map((series) => series.yMinPositive));
      scale = decadeAxis(lo, hi, box.bottom, box.top);
    } else {
      scale = axis(0, all.length ? niceCeil(hi) : 1, box.bottom, box.top, false);
    }
    return scale;
  }

  drawXAxis(ctx, box, x, size) {
    const unit = this.xAxis === "seconds" ? MS : 1;
    ctx.fillStyle = cssVar("--muted");
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const count = Math.max(2, Math.min(6, Math.floor((box.right - box.left) / (size * 5))));
    for (const tick of x.ticks(count)) {
      ctx.fillText(formatTick(tick / unit), x(tick), box.bottom + size * 0.3);
    }
    const label = X_AXES[this.xAxis] + (this.logX ? " (log scale)" : "");
    ctx.fillText(label, (box.left + box.right) / 2, box.bottom + size * 1.45);
  }

  /** A lane's averaged cost as a bold line in its colour and dash; returns where it ends. */
  drawLine(ctx, lane, x, y, size) {
    const width = Math.max(3, size / 5);
    ctx.strokeStyle = lane.style.colour;
    ctx.lineWidth = width;
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    ctx.setLineDash(lane.style.dash.map((d) => d * width));
    ctx.beginPath();
    let end = null;
    this.series(lane).forEach((bx, _min, _max, mean) => {
      const point = { x: x(bx), y: y(mean) };
      if (end) ctx.lineTo(point.x, point.y);
      else ctx.moveTo(point.x, point.y);
      end = point;
    });
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.arc(end.x, end.y, width * 1.3, 0, 2 * Math.PI);
    ctx.fillStyle = lane.style.colour;
    ctx.fill();
    return end;
  }
}

/** "batch 10  0.043", or "η 30  diverged": the lane and where its line stands. */
function labelText(lane) {
  if (lane.status === "diverged") return `${lane.label}  diverged`;
  const cost = lane.curve.latest;
  return cost === null ? lane.label : `${lane.label}  ${formatCost(cost)}`;
}

function formatCost(value) {
  return value >= 0.01 ? value.toFixed(3) : value.toPrecision(2);
}

function drawYLabel(ctx, box, label, size) {
  ctx.save();
  ctx.fillStyle = cssVar("--muted");
  ctx.textAlign = "center";
  ctx.textBaseline = "alphabetic";
  ctx.translate(size * 0.9, (box.top + box.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(label, 0, size * 0.4);
  ctx.restore();
}

/** Each lane's name just right of its line's end, moved down where two would overlap and kept
 *  inside the canvas, on a backing so that lines beneath never blur it; a thin leader joins a
 *  label moved away from its line. Returns the labels as drawn. */
function placeEndLabels(ctx, labels, box, width, size) {
  ctx.font = font(size, 650);
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  const lineHeight = size * 1.35;
  const sorted = [...labels].sort((a, b) => a.y - b.y);
  let below = -Infinity;
  for (const label of sorted) label.y = below = Math.max(label.y, below + lineHeight, box.top + size * 0.5);
  // Pushed past the bottom: move the whole stack up, keeping its order and spacing.
  let above = box.bottom + size;
  for (const label of sorted.reverse()) label.y = above = Math.min(label.y, above - lineHeight);
  return labels.map((label) => {
    const textWidth = ctx.measureText(label.text).width;
    const start = label.end ? label.end.x + size * 0.7 : box.right + size * 0.7;
    const left = Math.min(start, width - textWidth - 2);
    if (label.end && Math.abs(label.end.y - label.y) > size * 0.6) {
      ctx.strokeStyle = label.lane.style.colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(label.end.x + size * 0.3, label.end.y);
      ctx.lineTo(left - 2, label.y);
      ctx.stroke();
    }
    ctx.fillStyle = cssVar("--panel");
    ctx.globalAlpha = 0.85;
    ctx.fillRect(left - 3, label.y - size * 0.65, textWidth + 6, size * 1.3);
    ctx.globalAlpha = 1;
    ctx.fillStyle = label.lane.style.colour;
    ctx.fillText(label.text, left, label.y);
    return { text: label.text, x: left, y: label.y, width: textWidth, colour: label.lane.style.colour };
  });
}
