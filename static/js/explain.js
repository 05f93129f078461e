// Explain mode: one example's backpropagation, step by step, as 3Blue1Brown walks through it.
// The presenter picks a digit and steps with → and ←; every viewer's page follows (`explain`
// frames) and fetches the same trace from POST /api/explain. Nothing is computed here beyond
// products for drawing: every number comes from the server's trace of the engine's backward pass.

import { TinyImage, chartFont, cssVar, fitCanvas, font } from "./canvas.js";
import { EXPLAIN_STEPS, decodePixels, dequantise, exampleKey } from "./frames.js";
import { paintDiverging, paintSequential, sequential, signColour } from "./palette.js";

const TITLES = [
  "Forward pass, layer by layer",
  "Cost, and what each output wants",
  "One output neuron's three levers",
  "Wishes add up, backwards",
  "Back to the first layer",
  "One example vs. a mini-batch",
  "Apply: one gradient step",
];
const MAX_SHOWN = 16; // neurons per column; a wider layer shows its most telling ones
const MAX_TILES = 16; // first-layer gradient images in step 5 (8 per side in step 6)
const REVEAL_MS = 420; // per layer, for the forward pass
const MIN_CAPTION_SCALE = 0.7;

const TEMPLATE = `
  <header class="xp-head">
    <p class="xp-count" data-xp-count></p>
    <h2 data-xp-title></h2>
    <ol class="xp-dots" data-xp-dots></ol>
    <div class="xp-nav xp-presenter">
      <button type="button" data-xp-back title="Back one step (key ←)" aria-label="Back">←</button>
      <button type="button" class="primary" data-xp-next title="Next step (key →)">Next →</button>
      <button type="button" data-xp-close title="Leave explain mode (key Esc)">Done</button>
    </div>
  </header>
  <p class="xp-caption" data-xp-caption aria-live="polite"></p>
  <canvas class="xp-stage" data-xp-stage aria-label="The step drawn on the example's numbers"></canvas>
  <footer class="xp-foot">
    <div class="xp-pick xp-presenter">
      <button type="button" data-xp-prev title="The previous test digit">‹</button>
      <label>test digit <input type="number" min="0" step="1" data-xp-index></label>
      <button type="button" data-xp-after title="The next test digit">›</button>
      <span class="xp-or">or</span>
      <button type="button" data-xp-drawing title="The digit on the draw pad, with the label you type">my drawing</button>
      <label>label <input type="number" min="0" max="9" step="1" data-xp-label></label>
    </div>
    <div class="xp-apply xp-presenter" data-xp-apply-row>
      <label title="The learning rate: how big a step, 0 to 10">η <input type="number" min="0" max="10" step="any" value="1" data-xp-lr></label>
      <button type="button" class="primary" data-xp-apply>Apply one step</button>
    </div>
    <p class="xp-example" data-xp-example></p>
    <p class="xp-message" data-xp-message role="status"></p>
  </footer>`;

export class ExplainMode {
  /** `section`: the empty [data-explain] element; `state`: the page's state (run, probe,
   *  drawing); `token`: the presenter's token or null; `onToggle(active)`: show/hide hook. */
  constructor(section, { state, token = null, onToggle = () => {} }) {
    this.section = section;
    this.state = state;
    this.token = token;
    this.onToggle = onToggle;
    section.innerHTML = TEMPLATE;
    this.el = Object.fromEntries(
      [...section.querySelectorAll("*")]
        .flatMap((node) => Object.keys(node.dataset).map((key) => [key, node]))
        .filter(([key]) => key.startsWith("xp")),
    );
    this.canvas = this.el.xpStage;
    this.tile = new TinyImage(28);
    this.active = false;
    this.step = 1;
    this.example = null; // the request body: {index} or {pixels, label}
    this.key = "";
    this.trace = null;
    this.neuron = null;
    this.lesson = null;
    this.loads = 0; // the latest fetch wins
    this.led = false; // whether this (presenter's) page has driven the walk-through yet
    this.revealStart = 0;
    this.dirty = false;
    this.buildDots();
    this.listen();
    new ResizeObserver(() => this.invalidate()).observe(this.canvas);
    // A new theme or presentation mode changes the colours and type the stage is drawn in.
    new MutationObserver(() => this.invalidate()).observe(document.documentElement, {
      attributes: true,
      attributeFilter: ["class", "data-theme"],
    });
  }

  buildDots() {
    this.dots = TITLES.map((title, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = String(i + 1);
      button.title = title;
      button.disabled = !this.token;
      button.addEventListener("click", () => this.go(i + 1));
      item.append(button);
      this.el.xpDots.append(item);
      return button;
    });
  }

  listen() {
    const on = (key, handler) => this.el[key].addEventListener("click", handler);
    on("xpNext", () => this.go(this.step + 1));
    on("xpBack", () => this.go(this.step - 1));
    on("xpClose", () => this.close());
    on("xpPrev", () => this.pickIndex(this.currentIndex() - 1));
    on("xpAfter", () => this.pickIndex(this.currentIndex() + 1));
    on("xpDrawing", () => this.pickDrawing());
    on("xpApply", () => this.apply());
    this.el.xpIndex.addEventListener("change", () => this.pickIndex(Number(this.el.xpIndex.value)));
    // Capture phase: while explaining, the arrows step through the walk-through, not training.
    document.addEventListener("keydown", (event) => this.onKey(event), { capture: true });
  }

  onKey(event) {
    if (!this.token || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest?.("input, select, textarea, [contenteditable]")) return;
    const actions = this.active
      ? {
          ArrowRight: () => this.go(this.step + 1),
          ArrowLeft: () => this.go(this.step - 1),
          Escape: () => this.close(),
        }
      : { e: () => this.open(), E: () => this.open() };
    const action = actions[event.key];
    if (!action || document.querySelector("dialog[open]")) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    action();
  }

  // ---- the presenter drives ---------------------------------------------------------------

  /** Pause the run and explain the test digit the network view shows. */
  async open() {
    if (!this.token || this.active) return;
    this.led = true;
    this.show(true);
    if (this.state.run?.status === "running") await this.send("POST", "/api/run/pause");
    const index = this.state.testProbe?.index ?? 0;
    await this.choose({ index });
  }

  async close() {
    this.led = true;
    this.show(false);
    if (this.token) await this.send("POST", "/api/explain/end");
  }

  currentIndex() {
    return this.example?.index ?? this.state.testProbe?.index ?? 0;
  }

  pickIndex(index) {
    const size = this.state.run?.dataset?.test_size ?? Infinity;
    if (!Number.isInteger(index) || index < 0 || index >= size) {
      this.say(`test digits are numbered 0 to ${size - 1}`);
      return;
    }
    this.choose({ index });
  }

  pickDrawing() {
    const input = this.state.drawing?.input;
    const label = this.el.xpLabel.value === "" ? NaN : Number(this.el.xpLabel.value);
    if (!input) return this.say("draw a digit on the pad first (key D shows the pad)");
    if (!Number.isInteger(label) || label < 0 || label > 9) {
      this.el.xpLabel.focus();
      return this.say("type the digit you drew (0 to 9) as its label");
    }
    // Whole 1/255 steps: exactly the pixels the explain frame carries to the viewers.
    const pixels = Array.from(input, (v) => Math.round(v * 255) / 255);
    this.choose({ pixels, label });
  }

  async choose(example) {
    this.example = example;
    this.lesson = null;
    this.neuron = null;
    if (await this.load(example)) this.go(1);
  }

  go(step) {
    if (!this.token || !this.trace) return;
    this.led = true;
    this.step = Math.max(1, Math.min(EXPLAIN_STEPS, step));
    this.restartReveal();
    this.invalidate();
    this.send("POST", "/api/explain/step", { ...this.example, step: this.step, neuron: this.neuron });
  }

  async apply() {
    const lr = Number(this.el.xpLr.value);
    if (!(lr > 0 && lr <= 10)) return this.say("η must be above 0 and at most 10");
    const answer = await this.send("POST", "/api/teach", { ...this.example, lr });
    if (!answer) return;
    this.lesson = answer;
    await this.load(this.example, true);
    this.step = EXPLAIN_STEPS;
    this.invalidate();
  }

  // ---- viewers follow ---------------------------------------------------------------------

  /** An `explain` frame from the server: go where the presenter is. A presenter's page
   *  follows too until it first leads (so a reloaded presenter tab picks up the walk-through),
   *  then ignores the echoes of its own steps. */
  async follow(frame) {
    if (this.led) return;
    if (frame.step === null || !frame.example) {
      this.show(false);
      return;
    }
    this.show(true);
    const key = exampleKey(frame.example);
    const taught = frame.lesson && frame.lesson !== this.lesson;
    this.step = frame.step;
    this.neuron = frame.neuron;
    if (key !== this.key) this.lesson = null;
    if (frame.lesson) this.lesson = frame.lesson;
    this.restartReveal();
    this.invalidate();
    if (key !== this.key || taught || !this.trace) {
      const example = frame.example;
      const body =
        example.index !== null
          ? { index: example.index }
          : { pixels: Array.from(decodePixels(example.pixels)), label: example.label };
      this.example = body;
      await this.load(body, true);
    }
  }

  // ---- shared -----------------------------------------------------------------------------

  show(on) {
    if (this.active === on) return;
    this.active = on;
    this.section.hidden = !on;
    this.onToggle(on);
    if (on) this.invalidate();
    else this.trace = null;
    if (!on) this.key = "";
  }

  /** Fetch the trace of `example`; returns whether it arrived (and is still the latest). */
  async load(example, keepStep = false) {
    const ticket = ++this.loads;
    this.say("");
    try {
      const response = await fetch("/api/explain", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(example),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.message || body.detail || response.statusText);
      if (ticket !== this.loads) return false;
      this.trace = prepare(body);
      this.key = exampleKey(body.example);
      if (!keepStep) this.step = 1;
      this.restartReveal();
      this.invalidate();
      return true;
    } catch (error) {
      if (ticket === this.loads) this.say(`could not explain this example: ${error.message}`);
      return false;
    }
  }

  async send(method, path, body) {
    try {
      const response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.message || answer.detail || response.statusText);
      return answer;
    } catch (error) {
      this.say(error.message);
      return null;
    }
  }

  say(text) {
    this.el.xpMessage.textContent = text;
  }

  restartReveal() {
    const reduced = matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.revealStart = reduced ? -Infinity : performance.now();
  }

  /** Whether the step's drawing has come to rest (tests wait for it before screenshots). */
  get settled() {
    return !!this.trace && !this.dirty && this.revealProgress() >= this.trace.layers.length;
  }

  revealProgress() {
    return (performance.now() - this.revealStart) / REVEAL_MS;
  }

  invalidate() {
    if (this.dirty || !this.active) return;
    this.dirty = true;
    requestAnimationFrame(() => this.render());
  }

  render() {
    this.dirty = false;
    if (!this.active) return;
    this.renderText();
    const fitted = fitCanvas(this.canvas);
    if (!fitted || !this.trace) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    const size = chartFont(this.canvas);
    const painter = new Painter(ctx, width, height, size, this.tile);
    const scene = { trace: this.trace, neuron: this.neuron ?? this.trace.label, lesson: this.lesson };
    STEPS[this.step - 1](painter, scene, this);
    if (this.step === 1 && this.revealProgress() < this.trace.layers.length) this.invalidate();
  }

  renderText() {
    const trace = this.trace;
    const el = this.el;
    el.xpCount.textContent = `step ${this.step} of ${EXPLAIN_STEPS}`;
    el.xpTitle.textContent = TITLES[this.step - 1];
    this.dots.forEach((dot, i) => dot.setAttribute("aria-current", String(i + 1 === this.step)));
    el.xpBack.disabled = this.step <= 1;
    el.xpNext.disabled = this.step >= EXPLAIN_STEPS;
    el.xpApplyRow.hidden = this.step !== EXPLAIN_STEPS;
    if (!trace) {
      el.xpCaption.textContent = "Fetching this example's backward pass…";
      return;
    }
    const index = trace.example.index;
    if (document.activeElement !== el.xpIndex && index !== null) el.xpIndex.value = index;
    const what = index === null ? "the drawing" : `test digit #${index}`;
    el.xpExample.textContent = `${what}, a ${trace.label}${this.token ? "" : " · following the presenter"}`;
    el.xpCaption.textContent = caption(this.step, trace, this.neuron ?? trace.label, this.lesson, this.token);
    fitCaption(el.xpCaption);
  }
}

/** Shrink the caption's type a little when a long one would not fit its box. */
function fitCaption(caption) {
  caption.style.fontSize = "";
  let scale = 1;
  while (caption.scrollHeight > caption.clientHeight + 1 && scale > MIN_CAPTION_SCALE) {
    scale -= 0.05;
    caption.style.fontSize = `${scale}em`;
  }
}

/** The server's answer, with its compact encodings decoded once. */
function prepare(answer) {
  return {
    ...answer,
    pixels: decodePixels(answer.example.pixels),
    gradients: answer.layers.map((layer) => dequantise(layer.weight_gradient)),
    outputWeights: dequantise(answer.output_weights),
    batchFirst: dequantise(answer.batch_average.first_layer),
    batchOutput: dequantise(answer.batch_average.output_layer),
  };
}

// ---- captions: one or two plain sentences per step -------------------------------------------

const fixed = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
/** A signed number; tiny ones keep two significant digits instead of reading "0.000". */
function signed(v, digits = 2) {
  const size = Math.abs(v);
  const text = size === 0 || size >= 0.5 * 10 ** -digits ? size.toFixed(digits) : size.toPrecision(2);
  return `${v >= 0 ? "+" : "−"}${text}`;
}

function caption(step, trace, neuron, lesson, presenter) {
  const label = trace.label;
  const said = trace.prediction;
  const output = trace.layers.at(-1).activations;
  const cost = fixed(trace.cost, 3);
  const wanted = `To lower it, output ${label} should go up and the others down, each by as much as it is off.`;
  switch (step) {
    case 1:
      return [
        `The 784 pixels of this ${label} flow forward: each neuron adds up the layer before it,`,
        "weighted, and squashes the sum into its brightness.",
        said === label
          ? `The network says ${said}, which is right, with output ${fixed(output[said])}.`
          : `The network says ${said}; the right answer is ${label}.`,
      ].join(" ");
    case 2:
      return trace.loss === "mse"
        ? `The cost of this one example is ${cost}: half the sum of the squared gaps between the ten outputs and the target. ${wanted}`
        : `The cost of this one example is ${cost}, minus the log of output ${label}. ${wanted}`;
    case 3:
      return [
        `Output ${neuron} can change in three ways: ① its bias; ② its weights, where those from`,
        "bright neurons have the most leverage; ③ the activations of the layer before, in",
        "proportion to their weights.",
      ].join(" ");
    case 4: {
      const { index, layer } = strongestNudge(trace);
      const terms = trace.layers[layer].contributions[index].slice(0, 2).map((c) => c.neuron);
      const way = trace.layers[layer].nudges[index] >= 0 ? "up" : "down";
      return [
        "Every output wants something of the layer before; adding up those wishes, weighted by",
        "the connections, gives each neuron there its own nudge.",
        `Neuron ${index} is pushed ${way} most, mainly by output${terms.length > 1 ? "s" : ""} ${terms.join(" and ")}.`,
      ].join(" ");
    }
    case 5:
      return [
        "The same rule repeats, layer by layer, back to the first. Each square shows how one",
        `first-layer neuron's 784 weights should change for this ${label}: blue up, orange down.`,
      ].join(" ");
    case 6:
      return [
        "One example pulls the weights its own way; training follows the average wish of",
        `${trace.batch_average.size} examples, which helps most digits at once.`,
        `Left: this ${label}; right: the mini-batch.`,
      ].join(" ");
    default:
      if (lesson) {
        return [
          `One step with η ${lesson.lr}: this example's cost went from ${fixed(lesson.cost_before, 3)}`,
          `to ${fixed(lesson.cost_after, 3)}. Training takes such steps on the average of`,
          "mini-batches, thousands of times.",
        ].join(" ");
      }
      return [
        "Apply: move every weight and bias a small step against this example's gradient, then look again.",
        presenter ? "Choose the step size η and press Apply." : "The presenter takes the step.",
      ].join(" ");
  }
}

/** The hidden neuron (of the last hidden layer) with the largest nudge. */
function strongestNudge(trace) {
  const layer = trace.layers.length - 2;
  const nudges = trace.layers[layer].nudges;
  let index = 0;
  nudges.forEach((n, k) => {
    if (Math.abs(n) > Math.abs(nudges[index])) index = k;
  });
  return { index, layer };
}

// ---- drawing -----------------------------------------------------------------------------------

/** Ring options for the neuron a step is about. */
const STRONG = (p) => ({ ring: p.fg, ringWidth: 3 });

/** Canvas helpers in CSS pixels, with the page's colours and a base type size. */
class Painter {
  constructor(ctx, width, height, size, tile) {
    Object.assign(this, { ctx, width, height, size, tile });
    this.fg = cssVar("--fg");
    this.muted = cssVar("--muted");
    this.ring = cssVar("--neuron-ring");
    this.grid = cssVar("--grid-strong");
    this.panel = cssVar("--panel");
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
    paintSequential(this.tile.image, pixels, 1);
    this.tile.drawTo(this.ctx, x, y, side);
    this.ctx.strokeStyle = this.grid;
    this.ctx.lineWidth = 1;
    this.ctx.strokeRect(x - 0.5, y - 0.5, side + 1, side + 1);
  }

  /** A 28x28 map of signed values, blue positive, orange negative, ±scale at full colour. */
  map(values, x, y, side, scale) {
    paintDiverging(this.tile.image, values, scale || 1);
    this.tile.drawTo(this.ctx, x, y, side);
  }

  neuron(x, y, r, brightness, { ring = this.ring, ringWidth = 2 } = {}) {
    const ctx = this.ctx;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fillStyle = brightness === null ? this.panel : sequential(brightness);
    ctx.fill();
    ctx.strokeStyle = ring;
    ctx.lineWidth = r > 5 ? ringWidth : 1;
    ctx.stroke();
  }

  /** A bar for a desired change: up (blue) for positive `v`, down (orange) for negative. */
  vbar(x, y, v, length, width) {
    const h = Math.max(1.5, Math.abs(v) * length);
    this.ctx.fillStyle = signColour(v);
    this.ctx.fillRect(x - width / 2, v >= 0 ? y - h : y, width, h);
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

/** Activation → brightness in [0, 1] for the sequential scale. */
function brightness(trace, layer) {
  const values = trace.layers[layer].activations;
  const isOutput = layer === trace.layers.length - 1;
  if (isOutput || trace.activation === "sigmoid") return (k) => values[k];
  if (trace.activation === "tanh") return (k) => (values[k] + 1) / 2;
  const peak = Math.max(1, ...values);
  return (k) => values[k] / peak;
}

function layerName(trace, layer) {
  return layer === trace.layers.length - 1 ? "output" : `hidden ${layer + 1}`;
}

/** The label of the digit's column, with how many of the layer's neurons are drawn. */
function columnTitle(trace, layer, count) {
  const total = trace.layer_sizes[layer + 1];
  const name = layerName(trace, layer);
  return count < total ? `${name}: ${count} of ${total}` : name;
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
function drawForward(p, { trace }, mode) {
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
  const reveal = mode.revealProgress();
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
      p.ctx.strokeStyle = p.fg;
      p.ctx.lineWidth = 2.5;
      p.ctx.beginPath();
      p.ctx.arc(ring.x, ring.y, col.radius + 4, 0, 2 * Math.PI);
      p.ctx.stroke();
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
    p.neuron(x, circleY, radius, output[digit], strong ? STRONG(p) : {});
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
    p.neuron(x, y, col.radius, brightness(trace, L - 1)(k), strong ? STRONG(p) : {});
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
  p.neuron(xo, oy, outR, out, STRONG(p));
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
    p.neuron(x, y, hidden.radius, brightness(trace, L - 1)(k), k === featured ? STRONG(p) : {});
    p.vbar(x + hidden.radius + s * 0.5, y, nudges[k] / nudgePeak, hidden.spacing * 0.48, barW);
  });
  const deltaPeak = largest(deltas);
  outputs.points.forEach(({ x, y }, j) => {
    p.neuron(x, y, outputs.radius, trace.layers[L].activations[j], j === trace.label ? STRONG(p) : {});
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
  const peak = largest(picks.flatMap((j) => Array.from(gradient.values.subarray(j * 784, (j + 1) * 784))));
  const negative = new Float32Array(784);
  const cellW = width / cols;
  const cellH = side + s * 1.1;
  picks.forEach((j, i) => {
    const row = gradient.values.subarray(j * 784, (j + 1) * 784);
    for (let q = 0; q < 784; q++) negative[q] = -row[q];
    const cx = x + (i % cols) * cellW + (cellW - side) / 2;
    const cy = y + Math.floor(i / cols) * cellH;
    p.map(negative, cx, cy, side, peak);
    p.text(`#${j}`, cx + side / 2, cy + side + s * 0.5, { align: "center", size: s * 0.7, colour: p.muted });
  });
  return { side, cols };
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
function drawApply(p, { trace, lesson }, mode) {
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
    p.text(mode.token ? "press Apply below" : "waiting for the presenter", x, y, { size: s * 0.85, colour: p.muted });
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
