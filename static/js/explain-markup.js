// Explain mode's markup: the header with the step's title and dots, the caption in large type,
// the stage canvas, and the presenter's controls below it. It shows what it is told; what the
// buttons do is the controller's business (explain.js).

import { EXPLAIN_STEPS } from "./frames.js";
import { TITLES, caption } from "./explain-captions.js";

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

export class ExplainMarkup {
  /** Fill the empty `section`; `presenter`: whether this page leads (its dots are buttons). */
  constructor(section, presenter) {
    section.innerHTML = TEMPLATE;
    this.presenter = presenter;
    this.el = Object.fromEntries(
      [...section.querySelectorAll("*")]
        .flatMap((node) => Object.keys(node.dataset).map((key) => [key, node]))
        .filter(([key]) => key.startsWith("xp")),
    );
    this.dots = TITLES.map((title, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = String(i + 1);
      button.title = title;
      button.disabled = !presenter;
      item.append(button);
      this.el.xpDots.append(item);
      return button;
    });
  }

  get stage() {
    return this.el.xpStage;
  }

  /** `handlers`: {next, back, close, previous, after, drawing, apply, dot(step), index(n)}. */
  listen(handlers) {
    const click = (name, handler) => this.el[name].addEventListener("click", handler);
    click("xpNext", handlers.next);
    click("xpBack", handlers.back);
    click("xpClose", handlers.close);
    click("xpPrev", handlers.previous);
    click("xpAfter", handlers.after);
    click("xpDrawing", handlers.drawing);
    click("xpApply", handlers.apply);
    this.dots.forEach((dot, i) => dot.addEventListener("click", () => handlers.dot(i + 1)));
    this.el.xpIndex.addEventListener("change", () => handlers.index(Number(this.el.xpIndex.value)));
  }

  /** The label typed for a drawing: a digit, or NaN. */
  get label() {
    const text = this.el.xpLabel.value;
    return text === "" ? NaN : Number(text);
  }

  get learningRate() {
    return Number(this.el.xpLr.value);
  }

  askForLabel(message) {
    this.el.xpLabel.focus();
    this.say(message);
  }

  say(text) {
    this.el.xpMessage.textContent = text;
  }

  /** Show where the walk-through is: step `step` of `trace` (null while it is fetched). */
  show({ step, trace, neuron, lesson }) {
    const el = this.el;
    el.xpCount.textContent = `step ${step} of ${EXPLAIN_STEPS}`;
    el.xpTitle.textContent = TITLES[step - 1];
    this.dots.forEach((dot, i) => dot.setAttribute("aria-current", String(i + 1 === step)));
    el.xpBack.disabled = step <= 1;
    el.xpNext.disabled = step >= EXPLAIN_STEPS;
    el.xpApplyRow.hidden = step !== EXPLAIN_STEPS;
    if (!trace) {
      el.xpCaption.textContent = "Fetching this example's backward pass…";
      return;
    }
    const index = trace.example.index;
    if (document.activeElement !== el.xpIndex && index !== null) el.xpIndex.value = index;
    const what = index === null ? "the drawing" : `test digit #${index}`;
    el.xpExample.textContent = `${what}, a ${trace.label}${this.presenter ? "" : " · following the presenter"}`;
    el.xpCaption.textContent = caption(step, trace, neuron ?? trace.label, lesson, this.presenter);
    this.fitCaption();
  }

  /** Shrink the caption's type a little when a long one would not fit its box. */
  fitCaption() {
    const box = this.el.xpCaption;
    box.style.fontSize = "";
    let scale = 1;
    while (box.scrollHeight > box.clientHeight + 1 && scale > MIN_CAPTION_SCALE) {
      scale -= 0.05;
      box.style.fontSize = `${scale}em`;
    }
  }
}
