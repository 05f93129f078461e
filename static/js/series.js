// A time series that stays cheap to draw however long it gets: points fall into at most
// MAX_BUCKETS buckets (min, max, mean each), and neighbouring buckets merge when it fills up.
// Drawing costs O(buckets), adding a point O(1), so 100,000 mini-batches draw as fast as 100.

const MAX_BUCKETS = 2048;

export class BucketSeries {
  constructor() {
    this.clear();
  }

  clear() {
    this.bucketSize = 1;
    this.count = 0; // buckets in use
    this.min = new Float64Array(MAX_BUCKETS);
    this.max = new Float64Array(MAX_BUCKETS);
    this.sum = new Float64Array(MAX_BUCKETS);
    this.n = new Uint32Array(MAX_BUCKETS);
    this.firstX = null;
    this.lastX = null;
    this.lastY = null;
    this.yMin = Infinity;
    this.yMax = -Infinity;
    this.yMinPositive = Infinity;
    this.length = 0;
  }

  /** Add the point (x, y); x must not decrease. Non-finite y is skipped. */
  add(x, y) {
    if (!Number.isFinite(y)) return;
    if (this.firstX === null) this.firstX = x;
    let bucket = Math.floor((x - this.firstX) / this.bucketSize);
    while (bucket >= MAX_BUCKETS) {
      this.halve();
      bucket = Math.floor((x - this.firstX) / this.bucketSize);
    }
    for (let b = this.count; b <= bucket; b++) {
      this.min[b] = Infinity;
      this.max[b] = -Infinity;
      this.sum[b] = 0;
      this.n[b] = 0;
    }
    this.count = Math.max(this.count, bucket + 1);
    if (y < this.min[bucket]) this.min[bucket] = y;
    if (y > this.max[bucket]) this.max[bucket] = y;
    this.sum[bucket] += y;
    this.n[bucket] += 1;
    this.lastX = x;
    this.lastY = y;
    this.length += 1;
    if (y < this.yMin) this.yMin = y;
    if (y > this.yMax) this.yMax = y;
    if (y > 0 && y < this.yMinPositive) this.yMinPositive = y;
  }

  /** Merge bucket pairs: each bucket now covers twice as many x values. */
  halve() {
    const half = Math.ceil(this.count / 2);
    for (let b = 0; b < half; b++) {
      const a = 2 * b;
      const c = a + 1 < this.count ? a + 1 : a;
      const both = c !== a;
      this.min[b] = both ? Math.min(this.min[a], this.min[c]) : this.min[a];
      this.max[b] = both ? Math.max(this.max[a], this.max[c]) : this.max[a];
      this.sum[b] = this.sum[a] + (both ? this.sum[c] : 0);
      this.n[b] = this.n[a] + (both ? this.n[c] : 0);
    }
    this.count = half;
    this.bucketSize *= 2;
  }

  /** Call `visit(xStart, min, max, mean)` for every non-empty bucket, in order. */
  forEach(visit) {
    for (let b = 0; b < this.count; b++) {
      if (this.n[b] === 0) continue;
      const x = this.firstX + b * this.bucketSize;
      visit(x, this.min[b], this.max[b], this.sum[b] / this.n[b], this.bucketSize);
    }
  }
}

/**
 * Visit the series one screen column at a time: `visit(px, min, max, mean)` for every whole
 * pixel column `px` that holds points, where `x` maps an x value to pixels. Drawing one bar
 * per column keeps a dense series light, instead of thousands of overlapping strokes.
 */
export function forEachColumn(series, x, visit) {
  let column = null;
  let min = 0;
  let max = 0;
  let sum = 0;
  let n = 0;
  series.forEach((bx, bMin, bMax, bMean) => {
    const px = Math.floor(x(bx));
    if (px !== column && n > 0) visit(column, min, max, sum / n);
    if (px !== column) {
      column = px;
      min = Infinity;
      max = -Infinity;
      sum = 0;
      n = 0;
    }
    min = Math.min(min, bMin);
    max = Math.max(max, bMax);
    sum += bMean;
    n += 1;
  });
  if (n > 0) visit(column, min, max, sum / n);
}

/** A "nice" axis end at or above `value`: 1, 2 or 5 times a power of ten. */
export function niceCeil(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** Up to about `count` round tick values between lo and hi. */
export function niceTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const rough = span / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((s) => s * power).find((s) => s >= rough);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

/** Powers of ten between lo and hi (both > 0), for log axes; every k-th if there are many. */
export function logTicks(lo, hi, maxCount = 6) {
  const ticks = [];
  const first = Math.floor(Math.log10(lo));
  const last = Math.ceil(Math.log10(hi));
  const step = Math.max(1, Math.ceil((last - first + 1) / maxCount));
  for (let e = first; e <= last; e += step) {
    const t = 10 ** e;
    if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(t);
  }
  return ticks;
}

/** Short tick label: 0.001, 0.25, 12k, 1.5M. */
export function formatTick(value) {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`;
  if (abs >= 1) return `${+value.toPrecision(3)}`;
  if (abs >= 1e-3) return `${+value.toPrecision(2)}`;
  return value.toExponential(0);
}

/** An axis from lo to hi (both > 0 when logarithmic) onto the pixels from `start` to `end`. */
export function axis(lo, hi, start, end, log) {
  const f = log ? Math.log10 : (v) => v;
  const a = f(lo);
  const span = f(hi) - a || 1;
  const scale = (v) => start + ((f(Math.max(v, log ? lo : -Infinity)) - a) / span) * (end - start);
  scale.ticks = (count) => (log ? logTicks(lo, hi, count) : niceTicks(lo, hi, count));
  return scale;
}

/** The end of a linear axis from 0 that holds `max`: the first round tick at or above it. */
export function axisEnd(max) {
  const ticks = niceTicks(0, max, 5);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : niceCeil(max);
  return Math.ceil(max / step - 1e-9) * step;
}

/** A log axis over the whole decades that hold lo..hi (both > 0), onto `start`..`end`. */
export function decadeAxis(lo, hi, start, end) {
  return axis(10 ** Math.floor(Math.log10(lo)), 10 ** Math.ceil(Math.log10(hi)), start, end, true);
}
