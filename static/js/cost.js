// The cost chart: every mini-batch's cost (thin), its moving average (bold), epoch marks and
// the test accuracy at each epoch end (dots, right axis), with the room's own drawings read at
// the same moments beside it (squares, dashed). Linear or log cost axis.

import { chartFont, cssVar, drawValueGrid, fitCanvas, font } from "./canvas.js";
import {
  BucketSeries,
  forEachColumn,
  formatTick,
  logTicks,
  niceCeil,
  niceTicks,
} from "./series.js";
import { throttle } from "./throttle.js";

const AVERAGE_WINDOW = 100;

export class CostChart {
  constructor(panel) {
    this.canvas = panel.querySelector("canvas");
    this.readout = panel.querySelector("[data-readout]");
    this.showReadout = throttle(() => this.updateReadout(), 250);
    this.logToggle = panel.querySelector("[data-log]");
    this.raw = new BucketSeries();
    this.average = new BucketSeries();
    this.window = [];
    this.windowSum = 0;
    this.windowCount = 0;
    this.nextBatch = null;
    this.evaluations = [];
    this.roomEvaluations = []; // the room's drawings at each evaluation (gallery frames)
    this.batchesPerEpoch = null;
    this.log = false;
    this.dirty = true;
    this.logToggle?.addEventListener("change", () => this.setLog(this.logToggle.checked));
  }

  reset() {
    this.raw.clear();
    this.average.clear();
    this.window = [];
    this.windowSum = 0;
    this.windowCount = 0;
    this.evaluations = [];
    this.roomEvaluations = [];
    this.nextBatch = null;
    this.dirty = true;
  }

  setLog(on) {
    this.log = on;
    if (this.logToggle) this.logToggle.checked = on;
    this.dirty = true;
  }

  setBatchesPerEpoch(count) {
    if (count && count !== this.batchesPerEpoch) {
      this.batchesPerEpoch = count;
      this.dirty = true;
    }
  }

  /** Costs of consecutive mini-batches starting at global index `firstBatch`. */
  addCosts(firstBatch, costs) {
    costs.forEach((cost, i) => this.addCost(firstBatch + i, cost));
  }

  /** A hello frame's history: point i is the mean cost of `stride` batches from its start. */
  addHistory(history) {
    history.costs.forEach((cost, i) => {
      const batch = history.first_batch + i * history.stride;
      const count = Math.min(history.stride, history.next_batch - batch);
      this.addCost(batch, cost, count);
    });
    this.nextBatch = history.next_batch;
    for (const evaluation of history.evaluations) this.addEvaluation(evaluation);
  }

  /** The cost of mini-batch `batch` (or the mean of `count` batches starting there). */
  addCost(batch, cost, count = 1) {
    if (this.nextBatch !== null && batch < this.nextBatch) return; // already have it
    this.nextBatch = batch + count;
    if (cost === null || !Number.isFinite(cost)) return;
    this.raw.add(batch, cost);
    // The moving average covers the last AVERAGE_WINDOW batches, whether they arrived one by
    // one or as history points that each stand for `count` batches.
    this.window.push({ sum: cost * count, count });
    this.windowSum += cost * count;
    this.windowCount += count;
    while (this.windowCount - this.window[0].count >= AVERAGE_WINDOW) {
      const dropped = this.window.shift();
      this.windowSum -= dropped.sum;
      this.windowCount -= dropped.count;
    }
    this.average.add(batch, this.windowSum / this.windowCount);
    this.dirty = true;
  }

  /** A test result: `batch` is the global index of the last mini-batch before it. */
  addEvaluation(evaluation) {
    if (this.evaluations.some((e) => e.batch === evaluation.batch)) return;
    this.evaluations.push(evaluation);
    this.dirty = true;
  }

  /** The room's score at every evaluation of this run so far (a gallery frame's). */
  setRoomEvaluations(evaluations) {
    this.roomEvaluations = evaluations.filter((e) => e.accuracy !== null);
    this.dirty = true;
  }

  get movingAverage() {
    return this.windowCount ? this.windowSum / this.windowCount : null;
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    this.showReadout();
    const fitted = fitCanvas(this.canvas);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    const size = chartFont(this.canvas);
    const box = { left: size * 4, right: width - size * 3.6, top: size, bottom: height - size * 2.6 };
    ctx.clearRect(0, 0, width, height);
    ctx.font = font(size);
    const xMax = niceCeil(Math.max(this.raw.lastX ?? 0, 10) + 1);
    const x = (batch) => box.left + (batch / xMax) * (box.right - box.left);
    const y = this.costScale(box);
    this.drawAxes(ctx, box, x, xMax, y, size);
    this.drawEpochs(ctx, box, x, xMax, size);
    this.drawRaw(ctx, box, x, y);
    this.drawAverage(ctx, x, y, size);
    this.drawAccuracy(ctx, box, x, size);
  }

  /** Cost → canvas y, with the axis ticks; linear from 0 or log between the extremes. */
  costScale(box) {
    const series = this.raw;
    const hasData = series.length > 0;
    if (this.log) {
      const lo = hasData ? 10 ** Math.floor(Math.log10(series.yMinPositive)) : 0.01;
      const hi = hasData ? 10 ** Math.ceil(Math.log10(Math.max(series.yMax, lo * 10))) : 10;
      const span = Math.log10(hi) - Math.log10(lo);
      const scale = (v) =>
        box.bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * (box.bottom - box.top);
      scale.ticks = logTicks(lo, hi);
      return scale;
    }
    const hi = hasData ? niceCeil(series.yMax) : 1;
    const scale = (v) => box.bottom - (v / hi) * (box.bottom - box.top);
    scale.ticks = niceTicks(0, hi, 4);
    return scale;
  }

  drawAxes(ctx, box, x, xMax, y, size) {
    drawValueGrid(ctx, box, y, y.ticks, size);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const count = Math.max(2, Math.min(6, Math.floor((box.right - box.left) / (size * 5))));
    for (const tick of niceTicks(0, xMax, count)) {
      ctx.fillText(formatTick(tick), x(tick), box.bottom + size * 0.3);
    }
    ctx.fillText("mini-batches trained", (box.left + box.right) / 2, box.bottom + size * 1.4);
    ctx.save();
    ctx.translate(size * 0.9, (box.top + box.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(this.log ? "cost (log scale)" : "cost", 0, -size * 0.6);
    ctx.restore();
  }

  drawEpochs(ctx, box, x, xMax, size) {
    const perEpoch = this.batchesPerEpoch;
    if (!perEpoch) return;
    const spacing = x(perEpoch) - x(0);
    ctx.strokeStyle = cssVar("--grid-strong");
    ctx.fillStyle = cssVar("--muted");
    ctx.setLineDash([4, 4]);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    const last = this.raw.lastX ?? 0;
    for (let epoch = 1; epoch * perEpoch <= Math.min(xMax, last + 1); epoch++) {
      if (spacing < 3) break;
      const ex = Math.round(x(epoch * perEpoch)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(ex, box.top);
      ctx.lineTo(ex, box.bottom);
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  drawRaw(ctx, box, x, y) {
    const series = this.raw;
    if (series.length === 0) return;
    const perBucket = x(series.bucketSize) - x(0);
    ctx.strokeStyle = cssVar("--series-thin");
    ctx.fillStyle = cssVar("--series-thin");
    ctx.lineWidth = parseFloat(cssVar("--thin-line")) || 1;
    if (perBucket >= 1.5) {
      ctx.beginPath();
      let first = true;
      series.forEach((bx, _min, _max, mean) => {
        if (first) ctx.moveTo(x(bx), y(mean));
        else ctx.lineTo(x(bx), y(mean));
        first = false;
      });
      ctx.stroke();
      return;
    }
    // Many batches per pixel column: draw each column's min..max as one vertical bar.
    forEachColumn(series, x, (px, min, max) => {
      const top = y(max);
      ctx.fillRect(px, top, 1, Math.max(1, y(min) - top));
    });
  }

  drawAverage(ctx, x, y, size) {
    if (this.average.length === 0) return;
    ctx.strokeStyle = cssVar("--series-bold");
    ctx.lineWidth = Math.max(2.5, size / 5);
    ctx.lineJoin = "round";
    ctx.beginPath();
    let first = true;
    this.average.forEach((bx, _min, _max, mean) => {
      if (first) ctx.moveTo(x(bx), y(mean));
      else ctx.lineTo(x(bx), y(mean));
      first = false;
    });
    ctx.stroke();
  }

  /** Accuracy on a right axis, MNIST test and this room; the axis starts at the nearest 10%
   *  below the worst. With only the test line it is labelled "correct", as it always was. */
  drawAccuracy(ctx, box, x, size) {
    const lines = [{ points: this.evaluations, colour: cssVar("--accuracy"), name: "MNIST test" }];
    if (this.roomEvaluations.length) {
      lines.push({ points: this.roomEvaluations, colour: cssVar("--room"), name: "this room", room: true });
    }
    const all = lines.flatMap((line) => line.points);
    if (all.length === 0) return;
    const worst = Math.min(...all.map((e) => e.accuracy));
    const lo = Math.max(0, Math.floor(worst * 10 - 0.5) / 10);
    const ay = (a) => box.bottom - ((a - lo) / (1 - lo)) * (box.bottom - box.top);
    ctx.fillStyle = cssVar("--muted");
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (const tick of [lo, (lo + 1) / 2, 1]) {
      // The lowest label sits above the axis line, clear of the last mini-batch tick below.
      ctx.textBaseline = tick === lo ? "bottom" : "middle";
      ctx.fillText(`${Math.round(tick * 100)}%`, box.right + size * 0.4, ay(tick));
    }
    const labels = lines
      .filter((line) => line.points.length)
      .map((line) => this.drawAccuracyLine(ctx, line, x, ay, size, lines.length > 1));
    placeLabels(ctx, labels, box, size);
  }

  /** One accuracy line: circles for the test set, squares and dashes for the room. Returns
   *  its end label, placed by `placeLabels` so that two never overlap. */
  drawAccuracyLine(ctx, { points, colour, name, room }, x, ay, size, named) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.setLineDash(room ? [6, 4] : []);
    ctx.beginPath();
    points.forEach((e, i) => {
      if (i === 0) ctx.moveTo(x(e.batch + 1), ay(e.accuracy));
      else ctx.lineTo(x(e.batch + 1), ay(e.accuracy));
    });
    ctx.stroke();
    ctx.setLineDash([]);
    const radius = Math.max(4, size / 3);
    for (const e of points) {
      ctx.beginPath();
      if (room) ctx.rect(x(e.batch + 1) - radius, ay(e.accuracy) - radius, 2 * radius, 2 * radius);
      else ctx.arc(x(e.batch + 1), ay(e.accuracy), radius, 0, 2 * Math.PI);
      ctx.fillStyle = cssVar("--panel");
      ctx.fill();
      ctx.stroke();
    }
    const last = points[points.length - 1];
    const value = `${(last.accuracy * 100).toFixed(1)}%`;
    return {
      text: named ? `${name} ${value}` : `${value} correct`,
      colour,
      x: x(last.batch + 1) - radius,
      y: ay(last.accuracy) - radius - 2,
    };
  }

  updateReadout() {
    if (!this.readout) return;
    const average = this.movingAverage;
    const last = this.evaluations[this.evaluations.length - 1];
    const parts = [];
    parts.push(
      average === null
        ? "cost: no mini-batch trained yet"
        : `cost ${formatCost(average)} (mean of last ${this.windowCount} batches)`,
    );
    if (last) {
      parts.push(`test accuracy ${(last.accuracy * 100).toFixed(1)}% (after epoch ${last.epoch})`);
    }
    this.readout.textContent = parts.join(" · ");
  }
}

/** End labels of the accuracy lines above their last points, moved apart where they would
 *  overlap, kept inside the chart, on a backing so the lines beneath never blur them. */
function placeLabels(ctx, labels, box, size) {
  ctx.font = font(size, 600);
  ctx.textBaseline = "bottom";
  const sorted = [...labels].sort((a, b) => a.y - b.y);
  let above = -Infinity;
  for (const label of sorted) {
    const y = Math.min(Math.max(label.y, box.top + size, above + size * 1.2), box.bottom);
    const width = ctx.measureText(label.text).width;
    const x = Math.max(box.left, Math.min(label.x, box.right) - width);
    ctx.fillStyle = cssVar("--panel");
    ctx.globalAlpha = 0.85;
    ctx.fillRect(x - 3, y - size * 1.1, width + 6, size * 1.15);
    ctx.globalAlpha = 1;
    ctx.fillStyle = label.colour;
    ctx.textAlign = "left";
    ctx.fillText(label.text, x, y);
    above = y;
  }
}

function formatCost(value) {
  return value >= 0.01 ? value.toFixed(3) : value.toPrecision(3);
}
