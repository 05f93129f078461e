// Explain mode: one example's backpropagation, step by step, as 3Blue1Brown walks through it.
// The presenter picks a digit and steps with → and ←; every viewer's page follows (`explain`
// frames) and fetches the trace the presenter is showing by its key. This module holds where
// the walk-through is and talks to the server; explain-markup.js shows it, explain-steps.js
// draws it, explain-captions.js says it.

import { control, get, post } from "./api.js";
import { TinyImage, chartFont, fitCanvas } from "./canvas.js";
import { ExplainMarkup } from "./explain-markup.js";
import { drawStep } from "./explain-steps.js";
import { exampleBody, prepare } from "./explain-trace.js";
import { EXPLAIN_STEPS } from "./frames.js";

const REVEAL_MS = 420; // per layer, for the forward pass

export class ExplainMode {
  /** `section`: the empty [data-explain] element; `state`: the page's state (run, probe,
   *  drawing); `keys`: the page's Keyboard; `presenter`: whether this page leads;
   *  `onToggle(active)`: show/hide hook. */
  constructor(section, { state, keys, presenter = false, onToggle = () => {} }) {
    this.section = section;
    this.state = state;
    this.keys = keys;
    this.presenter = presenter;
    this.onToggle = onToggle;
    this.markup = new ExplainMarkup(section, presenter);
    this.canvas = this.markup.stage;
    this.tile = new TinyImage(28);
    this.active = false;
    this.step = 1;
    this.example = null; // the example on screen, as a request body: {index} or {pixels, label}
    this.key = ""; // the key of the trace on screen (GET /api/explain/{key})
    this.trace = null;
    this.neuron = null;
    this.lesson = null;
    this.loads = 0; // the latest fetch wins
    this.led = false; // whether this (presenter's) page has driven the walk-through yet
    this.releaseKeys = () => {};
    this.revealStart = 0;
    this.dirty = false;
    this.listen();
    new ResizeObserver(() => this.invalidate()).observe(this.canvas);
    // A new theme or presentation mode changes the colours and type the stage is drawn in.
    new MutationObserver(() => this.invalidate()).observe(document.documentElement, {
      attributes: true,
      attributeFilter: ["class", "data-theme"],
    });
  }

  listen() {
    this.markup.listen({
      next: () => this.go(this.step + 1),
      back: () => this.go(this.step - 1),
      close: () => this.close(),
      previous: () => this.pickIndex(this.currentIndex() - 1),
      after: () => this.pickIndex(this.currentIndex() + 1),
      drawing: () => this.pickDrawing(),
      apply: () => this.apply(),
      dot: (step) => this.go(step),
      index: (index) => this.pickIndex(index),
    });
  }

  // ---- the presenter drives ---------------------------------------------------------------

  /** Pause the run and explain the test digit the network view shows. */
  async open() {
    if (this.active) return;
    await this.openWith({ index: this.state.testProbe?.index ?? 0 });
  }

  /** Pause the run and explain `example`: {index} of a test digit, or {pixels, label} (a
   *  drawing, such as one of the room's). */
  async openWith(example) {
    if (!this.presenter) return;
    this.led = true;
    this.show(true);
    if (this.state.run?.status === "running") await this.send("POST", "/api/run/pause");
    await this.choose(example);
  }

  async close() {
    this.led = true;
    this.show(false);
    if (this.presenter) await this.send("POST", "/api/explain/end");
  }

  currentIndex() {
    return this.example?.index ?? this.state.testProbe?.index ?? 0;
  }

  pickIndex(index) {
    const size = this.state.run?.dataset?.test_size ?? Infinity;
    if (!Number.isInteger(index) || index < 0 || index >= size) {
      this.markup.say(`test digits are numbered 0 to ${size - 1}`);
      return;
    }
    this.choose({ index });
  }

  pickDrawing() {
    const input = this.state.drawing?.input;
    const label = this.markup.label;
    if (!input) return this.markup.say("draw a digit on the pad first (key D shows the pad)");
    if (!Number.isInteger(label) || label < 0 || label > 9) {
      return this.markup.askForLabel("type the digit you drew (0 to 9) as its label");
    }
    // Whole 1/255 steps: the precision the server names an example by, so that the trace
    // computed for this drawing is the one its key stands for.
    const pixels = Array.from(input, (v) => Math.round(v * 255) / 255);
    this.choose({ pixels, label });
  }

  async choose(example) {
    this.example = example;
    this.lesson = null;
    this.neuron = null;
    if (await this.load(() => post("/api/explain", example))) this.go(1);
  }

  /** Show step `step` here and on every viewer's screen. */
  async go(step) {
    if (!this.presenter || !this.trace) return;
    this.led = true;
    this.step = Math.max(1, Math.min(EXPLAIN_STEPS, step));
    this.restartReveal();
    this.invalidate();
    const body = { ...this.example, step: this.step, neuron: this.neuron };
    const frame = await this.send("POST", "/api/explain/step", body);
    // If the weights changed since this page fetched its trace, show what the viewers fetch.
    if (frame && frame.key !== this.key) await this.load(() => get(`/api/explain/${frame.key}`), true);
  }

  async apply() {
    const lr = this.markup.learningRate;
    if (!(lr > 0 && lr <= 10)) return this.markup.say("η must be above 0 and at most 10");
    const answer = await this.send("POST", "/api/teach", { ...this.example, lr });
    if (!answer) return;
    this.lesson = answer;
    await this.load(() => post("/api/explain", this.example), true);
    this.step = EXPLAIN_STEPS;
    this.invalidate();
  }

  /** A presenter request; a refusal is shown under the stage. Resolves to the answer or null. */
  async send(method, path, body) {
    try {
      return await control(method, path, body);
    } catch (error) {
      this.markup.say(error.message);
      return null;
    }
  }

  // ---- viewers follow ---------------------------------------------------------------------

  /** An `explain` frame from the server: go where the presenter is. A presenter's page
   *  follows too until it first leads (so a reloaded presenter tab picks up the walk-through),
   *  then ignores the echoes of its own steps. */
  async follow(frame) {
    if (this.led) return;
    if (frame.step === null || !frame.key) {
      this.show(false);
      return;
    }
    this.show(true);
    const fresh = frame.key !== this.key;
    if (fresh) {
      this.key = frame.key; // asked for once, however many frames name it before it arrives
      this.lesson = null;
    }
    if (frame.lesson) this.lesson = frame.lesson;
    this.step = frame.step;
    this.neuron = frame.neuron;
    this.restartReveal();
    this.invalidate();
    if (fresh) await this.load(() => get(`/api/explain/${frame.key}`), true);
  }

  // ---- shared -----------------------------------------------------------------------------

  show(on) {
    if (this.active === on) return;
    this.active = on;
    this.section.hidden = !on;
    this.onToggle(on);
    if (on && this.presenter) {
      // While explaining, the arrows step through the walk-through instead of training.
      this.releaseKeys = this.keys.bind({
        ArrowRight: () => this.go(this.step + 1),
        ArrowLeft: () => this.go(this.step - 1),
        Escape: () => this.close(),
      });
    }
    if (on) {
      this.invalidate();
    } else {
      this.releaseKeys();
      this.trace = null;
      this.key = "";
    }
  }

  /** Fetch a trace (`fetchTrace()` resolves to the server's answer); returns whether it
   *  arrived and is still the latest asked for. When it fails, the stage empties rather than
   *  go on showing another example. */
  async load(fetchTrace, keepStep = false) {
    const ticket = ++this.loads;
    this.markup.say("");
    try {
      const answer = await fetchTrace();
      if (ticket !== this.loads) return false;
      this.trace = prepare(answer);
      this.key = answer.key;
      this.example = exampleBody(this.trace);
      if (!keepStep) this.step = 1;
      this.restartReveal();
      this.invalidate();
      return true;
    } catch (error) {
      if (ticket === this.loads) {
        this.trace = null;
        this.key = "";
        this.markup.say(`could not explain this example: ${error.message}`);
        this.invalidate();
      }
      return false;
    }
  }

  restartReveal() {
    const reduced = matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.revealStart = reduced ? -Infinity : performance.now();
  }

  /** Whether the step's drawing has come to rest (tests wait for it before screenshots). */
  get settled() {
    return !!this.trace && !this.dirty && this.revealProgress() >= this.trace.layers.length;
  }

  /** How many layers of the forward pass are shown (fractions fade in). */
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
    const scene = {
      step: this.step,
      trace: this.trace,
      neuron: this.neuron ?? this.trace?.label,
      lesson: this.lesson,
      reveal: this.revealProgress(),
      presenter: this.presenter,
    };
    this.markup.show(scene);
    const fitted = fitCanvas(this.canvas);
    if (!fitted || !this.trace) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    drawStep(this.step, ctx, { width, height, size: chartFont(this.canvas), tile: this.tile }, scene);
    if (this.step === 1 && scene.reveal < this.trace.layers.length) this.invalidate();
  }
}
