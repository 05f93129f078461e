// The draw pad: draw a digit with mouse, finger or pen; the live network answers while you draw
// and again as it keeps training. Shows the 28x28 image the network actually saw.

import { post } from "./api.js";
import { TinyImage } from "./canvas.js";
import { paintSequential } from "./palette.js";

const PAD_SIZE = 560; // 20 × 28 internal pixels: sharp on HiDPI phones, whatever the pad's size
// The server lets each client classify once a second, in bursts of up to ten (serve
// --classify-limit): a pad never asks more often than that, whatever is drawn or tapped.
const WHILE_DRAWING_MS = 1000;
// Asking again because the network learned: a room of phones must stay well inside the
// server's total for everyone (200 a second by default).
const WHILE_TRAINING_MS = 3000;

export class DrawPad {
  /** `panel` holds [data-pad] canvas, [data-bars], [data-seen] canvas, [data-clear], [data-answer]. */
  constructor(panel, { onResult = () => {} } = {}) {
    this.pad = panel.querySelector("[data-pad]");
    this.pad.width = this.pad.height = PAD_SIZE;
    this.ctx = this.pad.getContext("2d");
    this.bars = panel.querySelector("[data-bars]");
    this.seen = panel.querySelector("[data-seen]");
    this.answer = panel.querySelector("[data-answer]");
    this.hint = panel.querySelector("[data-hint]");
    this.onResult = onResult;
    this.seenImage = new TinyImage(28);
    this.empty = true;
    this.version = 0; // bumps on every stroke; tells whether a result is stale
    this.sentVersion = -1;
    this.inFlight = false;
    this.lastSent = 0;
    this.waitUntil = 0; // after a 429: not before the server's Retry-After
    this.timer = null;
    this.result = null;
    this.buildBars();
    this.clear();
    this.listen();
    panel.querySelector("[data-clear]")?.addEventListener("click", () => this.clear());
  }

  buildBars() {
    this.barParts = [];
    this.bars.replaceChildren();
    for (let digit = 0; digit < 10; digit++) {
      const column = document.createElement("div");
      column.className = "prob";
      column.innerHTML = `<span class="prob-value">–</span><span class="prob-track"><span class="prob-fill"></span></span><span class="prob-digit">${digit}</span>`;
      this.bars.append(column);
      this.barParts.push({
        column,
        value: column.querySelector(".prob-value"),
        fill: column.querySelector(".prob-fill"),
      });
    }
  }

  clear() {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, PAD_SIZE, PAD_SIZE);
    this.empty = true;
    this.version += 1;
    this.result = null;
    this.showResult(null);
    this.onResult(null);
  }

  listen() {
    let last = null;
    const point = (event) => {
      const box = this.pad.getBoundingClientRect();
      return {
        x: ((event.clientX - box.left) / box.width) * PAD_SIZE,
        y: ((event.clientY - box.top) / box.height) * PAD_SIZE,
        pressure: event.pointerType === "pen" && event.pressure > 0 ? event.pressure : 0.5,
      };
    };
    this.pad.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      this.pad.setPointerCapture(event.pointerId);
      last = point(event);
      this.stroke(last, last);
    });
    this.pad.addEventListener("pointermove", (event) => {
      if (!last) return;
      // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (const e of events.length ? events : [event]) {
        const next = point(e);
        this.stroke(last, next);
        last = next;
      }
    });
    const end = () => {
      if (!last) return;
      last = null;
      this.classifySoon(WHILE_DRAWING_MS);
    };
    this.pad.addEventListener("pointerup", end);
    this.pad.addEventListener("pointercancel", end);
  }

  stroke(from, to) {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = PAD_SIZE * (0.05 + 0.05 * to.pressure);
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x + 0.01, to.y);
    ctx.stroke();
    this.empty = false;
    this.version += 1;
    this.classifySoon(WHILE_DRAWING_MS);
  }

  /** The network changed (a new snapshot): ask again, at most every WHILE_TRAINING_MS. */
  refresh() {
    if (!this.empty) this.classifySoon(WHILE_TRAINING_MS, true);
  }

  /** Classify once `interval` ms have passed since the last request (and any wait the
   *  server asked for): one request for however many strokes come meanwhile. */
  classifySoon(interval, evenIfUnchanged = false) {
    if (this.empty || this.timer) return;
    const due = Math.max(this.lastSent + interval, this.waitUntil);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (evenIfUnchanged || this.version !== this.sentVersion) this.classify();
    }, Math.max(0, due - performance.now()));
  }

  async classify() {
    if (this.inFlight || this.empty) return;
    this.inFlight = true;
    this.lastSent = performance.now();
    const version = this.version;
    this.sentVersion = version;
    try {
      const body = await post("/api/classify", await this.pngBlob());
      if (!this.empty) {
        this.result = body;
        this.showResult(body);
        this.onResult(body);
      }
    } catch (error) {
      if (error.tooFast) this.slowDown(error.retryAfter ?? 1);
      else if (this.hint) this.hint.textContent = `could not classify: ${error.message}`;
    } finally {
      this.inFlight = false;
      if (this.version !== this.sentVersion) this.classifySoon(WHILE_DRAWING_MS);
    }
  }

  /** Over the server's limit: say so, and ask again (for this drawing) once it allows. */
  slowDown(seconds) {
    this.waitUntil = performance.now() + seconds * 1000;
    this.sentVersion = -1;
    if (this.hint) this.hint.textContent = `slow down: asking the network again in ${seconds} s`;
    this.classifySoon(0);
  }

  /** A small PNG of the pad: the server does MNIST-style cropping and centring. */
  pngBlob() {
    const small = document.createElement("canvas");
    small.width = small.height = 112;
    small.getContext("2d").drawImage(this.pad, 0, 0, 112, 112);
    return new Promise((resolve) => small.toBlob(resolve, "image/png"));
  }

  showResult(result) {
    const probabilities = result?.probabilities;
    this.barParts.forEach((part, digit) => {
      const p = probabilities ? probabilities[digit] : 0;
      part.fill.style.height = `${(p * 100).toFixed(1)}%`;
      part.value.textContent = probabilities ? `${Math.round(p * 100)}%` : "–";
      part.column.classList.toggle("best", !!result && result.digit === digit);
    });
    if (this.answer) {
      this.answer.textContent = result
        ? `network says ${result.digit} (${Math.round(result.probabilities[result.digit] * 100)}% sure)`
        : "draw a digit";
    }
    if (this.hint) this.hint.textContent = "";
    this.drawSeen(result?.input);
  }

  drawSeen(input) {
    if (!this.seen) return;
    const ctx = this.seen.getContext("2d");
    const side = this.seen.width;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, side, side);
    if (!input) return;
    paintSequential(this.seenImage.image, input, 1);
    this.seenImage.drawTo(ctx, 0, 0, side);
  }
}
