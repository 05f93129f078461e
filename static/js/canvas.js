// Shared canvas helpers: crisp drawing on HiDPI screens and small images drawn without blur.

import { formatTick } from "./series.js";

/**
 * Size the canvas backing store to its CSS box times devicePixelRatio and return a context
 * whose units are CSS pixels. Returns null while the canvas is hidden (zero size).
 */
export function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return null;
  const pixelWidth = Math.round(width * ratio);
  const pixelHeight = Math.round(height * ratio);
  if (canvas.width !== pixelWidth || canvas.height !== pixelHeight) {
    canvas.width = pixelWidth;
    canvas.height = pixelHeight;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

/** A reusable 28x28 offscreen canvas: paint ImageData into it, then scale it up unsmoothed. */
export class TinyImage {
  constructor(size = 28) {
    this.canvas = document.createElement("canvas");
    this.canvas.width = size;
    this.canvas.height = size;
    this.ctx = this.canvas.getContext("2d");
    this.image = this.ctx.createImageData(size, size);
  }

  /** Draw the current `image` at (x, y) with side `side` CSS pixels, pixels kept square. */
  drawTo(ctx, x, y, side) {
    this.ctx.putImageData(this.image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.canvas, x, y, side, side);
  }
}

const styleCache = new Map();

/**
 * Read a CSS custom property (colours follow the theme set in CSS). Cached: reading computed
 * style inside a render would force a style recalculation after every text update.
 */
export function cssVar(name) {
  if (!styleCache.has(name)) {
    styleCache.set(name, getComputedStyle(document.documentElement).getPropertyValue(name).trim());
  }
  return styleCache.get(name);
}

/** Forget cached style values: call after the theme or presentation mode changes. */
export function invalidateStyles() {
  styleCache.clear();
}

/** The page's font stack at a size in CSS pixels. */
export function font(size, weight = 400) {
  return `${weight} ${size}px ${cssVar("--font") || "system-ui, sans-serif"}`;
}

/** The font size for text drawn on `canvas`: its CSS font-size (the page sets it per mode). */
export function chartFont(canvas) {
  if (!styleCache.has(canvas)) styleCache.set(canvas, parseFloat(getComputedStyle(canvas).fontSize) || 13);
  return styleCache.get(canvas);
}

/**
 * Horizontal grid lines across `box` at each of `ticks`, labelled left of it: the value axis the
 * cost and gradient charts share. `y` maps a value to a canvas row; `size` is the font size.
 */
export function drawValueGrid(ctx, box, y, ticks, size) {
  ctx.strokeStyle = cssVar("--grid");
  ctx.fillStyle = cssVar("--muted");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const tick of ticks) {
    const ty = Math.round(y(tick)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(box.left, ty);
    ctx.lineTo(box.right, ty);
    ctx.stroke();
    ctx.fillText(formatTick(tick), box.left - size * 0.4, ty);
  }
}
