// The room's digits: every drawing sent to the board, in columns by the digit the network reads
// now (they move as it learns), a red edge and the digit meant on the ones it reads wrong; the
// room's and the MNIST test set's confusion matrices and the share read right per digit. The
// presenter's page also shows authors, moderates (hide, show again, delete), switches learning
// from the room, the held-out half and names, exports, and explains a drawing on a click.

import { control, download, get, serverUrl } from "./api.js";
import { chartFont } from "./canvas.js";
import { DIGITS } from "./frames.js";
import { drawConfusion, drawPerDigit, perDigitAccuracy } from "./gallery-charts.js";

const LARGEST_THUMB = 72; // CSS pixels
const SMALLEST_THUMB = 20; // still a digit one can read from the back of the room
const THUMB_GAP = 3;

const percent = (share) => (share === null || share === undefined ? "–" : `${Math.round(share * 100)}%`);
const plural = (count, word) => `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;

export class GalleryPanel {
  /** `panel`: the [data-panel="gallery"] section; `perDigit`: the canvas of the per-digit
   *  accuracy panel; `presenter`: whether this page moderates; `onExplain({pixels, label})`:
   *  explain a drawing (the presenter's click). */
  constructor(panel, { perDigit, presenter = false, onExplain = () => {} }) {
    this.panel = panel;
    this.presenter = presenter;
    this.onExplain = onExplain;
    this.el = Object.fromEntries(
      [...panel.querySelectorAll("[data-gallery]")].map((el) => [el.dataset.gallery, el]),
    );
    this.matrices = {
      room: panel.querySelector('[data-confusion="room"]'),
      test: panel.querySelector('[data-confusion="test"]'),
    };
    this.perDigit = perDigit;
    this.controls = panel.querySelector("[data-gallery-controls]");
    this.frame = null;
    this.authors = new Map(); // id → first name: the presenter's, from GET /api/gallery
    this.hiddenDrawings = [];
    this.detailsVersion = null;
    this.thumbs = new Map(); // id → element, kept so a picture loads once
    this.stacks = this.buildColumns();
    this.dirty = true;
    this.el.invite.querySelector("strong").textContent = serverUrl("/draw").href;
    if (presenter) this.listen();
    this.controls.hidden = !presenter;
    new ResizeObserver(() => this.fitThumbs()).observe(this.el.columns);
  }

  buildColumns() {
    return Array.from({ length: DIGITS }, (_, digit) => {
      const column = document.createElement("section");
      column.className = "read-as";
      column.innerHTML = `
        <h3 title="drawings the network reads as ${digit}">
          <span class="digit">${digit}</span><span class="count"></span>
        </h3>
        <div class="stack"></div>`;
      this.el.columns.append(column);
      return { column, count: column.querySelector(".count"), stack: column.querySelector(".stack") };
    });
  }

  listen() {
    for (const input of this.controls.querySelectorAll("[data-setting]")) {
      input.addEventListener("change", () => this.change({ [input.dataset.setting]: input.checked }));
    }
    for (const button of this.controls.querySelectorAll("[data-export]")) {
      const kind = button.dataset.export;
      button.addEventListener("click", () =>
        this.act(() => download(`/api/gallery/export.${kind}`, `room-digits.${kind}`)),
      );
    }
    this.controls.querySelector("[data-clear-gallery]").addEventListener("click", () => {
      const count = this.frame?.count ?? 0;
      if (confirm(`Delete all ${plural(count, "drawing")} from every screen? Export them first to keep them.`)) {
        this.act(() => control("DELETE", "/api/gallery"));
      }
    });
    this.el.columns.addEventListener("click", (event) => this.clicked(event));
    this.controls.querySelector("[data-hidden-list]").addEventListener("click", (event) => this.clicked(event));
  }

  // ---- frames and answers -----------------------------------------------------------------

  /** A `gallery` frame: the visible drawings as the network reads them now. */
  update(frame) {
    const changed = frame.version !== this.frame?.version;
    this.frame = frame;
    this.showThumbs(frame.items);
    this.showScores(frame);
    this.dirty = true;
    if (this.presenter && changed) this.fetchDetails(frame.version);
  }

  /** The presenter's own view: every author, and the hidden drawings. */
  async fetchDetails(version) {
    if (this.detailsVersion === version) return;
    this.detailsVersion = version;
    try {
      const answer = await control("GET", "/api/gallery");
      this.authors = new Map(answer.items.map((item) => [item.id, item.author]));
      this.hiddenDrawings = answer.items.filter((item) => item.hidden);
      this.showHidden();
      if (this.frame) this.showThumbs(this.frame.items);
      this.showReadout(this.frame ?? answer);
    } catch (error) {
      this.detailsVersion = null;
      this.say(error.message);
    }
  }

  authorOf(item) {
    return this.presenter ? this.authors.get(item.id) : item.author;
  }

  // ---- thumbnails ---------------------------------------------------------------------------

  showThumbs(items) {
    const byReading = Array.from({ length: DIGITS }, () => []);
    const seen = new Set();
    for (const item of items) {
      seen.add(item.id);
      const thumb = this.thumbs.get(item.id) ?? this.makeThumb(item);
      this.describeThumb(thumb, item);
      byReading[item.digit].push(thumb);
    }
    for (const [id, thumb] of this.thumbs) {
      if (!seen.has(id)) {
        thumb.remove();
        this.thumbs.delete(id);
      }
    }
    byReading.forEach((thumbs, digit) => {
      const { stack, count } = this.stacks[digit];
      const current = [...stack.children];
      if (current.length !== thumbs.length || current.some((el, i) => el !== thumbs[i])) {
        stack.replaceChildren(...thumbs);
      }
      count.textContent = thumbs.length ? `×${thumbs.length}` : "";
    });
    this.el.invite.hidden = items.length > 0;
    this.fitThumbs();
  }

  makeThumb(item) {
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    thumb.dataset.id = item.id;
    const picture = `<img src="${serverUrl(`/api/gallery/${item.id}/image.png`)}" alt="" draggable="false">`;
    const meant = `<span class="meant" aria-hidden="true">${item.label}</span>`;
    const hide = `<button type="button" class="hide" data-hide title="hide from every screen"
      aria-label="hide this drawing from every screen">×</button>`;
    thumb.innerHTML = this.presenter
      ? `<button type="button" class="show" data-explain-drawing>${picture}${meant}</button>${hide}`
      : `${picture}${meant}`;
    this.thumbs.set(item.id, thumb);
    return thumb;
  }

  describeThumb(thumb, item) {
    const wrong = item.digit !== item.label;
    thumb.classList.toggle("wrong", wrong);
    const learning = this.frame?.settings.learn;
    thumb.classList.toggle("learnt", learning && !item.held_out);
    const author = this.authorOf(item);
    const parts = [`meant ${item.label}`, `read as ${item.digit} (${percent(item.confidence)} sure)`];
    if (learning) parts.push(item.held_out ? "held out: never learnt from" : "learnt from");
    if (author) parts.push(`by ${author}`);
    if (this.presenter) parts.push("click to explain it");
    thumb.title = parts.join(" · ");
    thumb.setAttribute("aria-label", `a ${item.label}${wrong ? `, read as ${item.digit}` : ""}`);
  }

  /** The largest thumbnails with which the fullest column still fits its box; in a room too
   *  big for even the smallest, each column shows its newest drawings and counts them all. */
  fitThumbs() {
    const box = this.stacks[0].stack.getBoundingClientRect();
    const height = this.el.columns.getBoundingClientRect().bottom - box.top;
    if (!box.width || height <= 0) return;
    const fullest = Math.max(1, ...this.stacks.map(({ stack }) => stack.childElementCount));
    const fitting = (side) => {
      const perRow = Math.max(1, Math.floor((box.width + THUMB_GAP) / (side + THUMB_GAP)));
      return perRow * Math.max(1, Math.floor((height + THUMB_GAP) / (side + THUMB_GAP)));
    };
    let side = Math.max(SMALLEST_THUMB, Math.min(LARGEST_THUMB, Math.floor(box.width)));
    while (side > SMALLEST_THUMB && fitting(side) < fullest) side -= 2;
    this.el.columns.style.setProperty("--thumb", `${side}px`);
    const room = fitting(side);
    for (const { stack } of this.stacks) {
      const older = stack.childElementCount - room;
      [...stack.children].forEach((thumb, i) => thumb.classList.toggle("older", i < older));
    }
  }

  async clicked(event) {
    const thumb = event.target.closest("[data-id]");
    if (!thumb) return;
    const id = Number(thumb.dataset.id);
    if (event.target.closest("[data-hide]")) {
      return this.act(() => control("PATCH", `/api/gallery/${id}`, { hidden: true }));
    }
    if (event.target.closest("[data-unhide]")) {
      return this.act(() => control("PATCH", `/api/gallery/${id}`, { hidden: false }));
    }
    if (event.target.closest("[data-delete]")) {
      return this.act(() => control("DELETE", `/api/gallery/${id}`));
    }
    if (event.target.closest("[data-explain-drawing]")) {
      const drawing = await this.act(() => get(`/api/gallery/${id}`));
      if (drawing) this.onExplain({ pixels: drawing.pixels, label: drawing.label });
    }
  }

  // ---- scores -------------------------------------------------------------------------------

  showScores(frame) {
    this.el.room.textContent = percent(frame.accuracy);
    this.el.test.textContent = frame.test ? percent(frame.test.accuracy) : "–";
    this.el["test-when"].textContent = !frame.test
      ? ""
      : frame.test.batch
        ? `(after epoch ${frame.test.epoch})`
        : "(untrained)";
    const { learn, hold_out: holdOut } = frame.settings;
    this.el.held.hidden = !learn;
    if (learn) {
      const learnt = frame.training;
      const held = frame.held_out;
      this.el.held.innerHTML = holdOut
        ? `<b>${percent(held.accuracy)}</b> held out <small>(${held.count} never trained on; ${percent(learnt.accuracy)} of ${learnt.count} learnt from)</small>`
        : `<b>${learnt.count}</b> learnt from <small>(none held out)</small>`;
    }
    this.el["room-caption"].title = `${plural(frame.count, "drawing")} by the room, read now`;
    const test = frame.test;
    const digits = test ? test.confusion.flat().reduce((a, b) => a + b, 0) : 0;
    this.el["test-caption"].title = test
      ? `${digits.toLocaleString("en-US")} test digits read by the network after ${test.batch.toLocaleString("en-US")} mini-batches (epoch ${test.epoch})`
      : "";
    for (const input of this.controls.querySelectorAll("[data-setting]")) {
      input.checked = frame.settings[input.dataset.setting];
    }
    this.showReadout(frame);
  }

  showReadout(frame) {
    const parts = [plural(frame.count, "drawing")];
    if (this.presenter && this.hiddenDrawings.length) parts.push(`${this.hiddenDrawings.length} hidden`);
    if (frame.settings.learn) parts.push("◣ learnt from");
    const newest = frame.items.reduce((a, b) => (a && a.id > b.id ? a : b), null);
    if (newest) {
      const author = this.authorOf(newest);
      const whose = author ? `${author}'s ${newest.label}` : `a ${newest.label}`;
      const verdict = newest.digit === newest.label ? "read right" : `read as ${newest.digit}`;
      parts.push(`newest: ${whose}, ${verdict}`);
    }
    this.el.readout.textContent = parts.join(" · ");
  }

  showHidden() {
    const list = this.controls.querySelector("[data-hidden-list]");
    list.hidden = this.hiddenDrawings.length === 0;
    list.querySelector("summary").textContent = `${this.hiddenDrawings.length} hidden`;
    list.querySelector("ul").replaceChildren(
      ...this.hiddenDrawings.map((item) => {
        const entry = document.createElement("li");
        entry.dataset.id = item.id;
        const name = document.createElement("span");
        name.textContent = `#${item.id}: a ${item.label}${item.author ? ` by ${item.author}` : ""}`;
        entry.append(name);
        entry.insertAdjacentHTML(
          "beforeend",
          '<button type="button" data-unhide>show again</button><button type="button" data-delete>delete</button>',
        );
        return entry;
      }),
    );
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    const frame = this.frame;
    const empty = Array.from({ length: DIGITS }, () => Array(DIGITS).fill(0));
    const size = chartFont(this.perDigit);
    drawConfusion(this.matrices.room, frame?.confusion ?? empty, size);
    drawConfusion(this.matrices.test, frame?.test?.confusion ?? empty, size);
    const room = perDigitAccuracy(frame?.confusion ?? empty);
    const test = perDigitAccuracy(frame?.test?.confusion ?? empty);
    drawPerDigit(this.perDigit, room, test, size);
  }

  // ---- the presenter's requests -------------------------------------------------------------

  async change(settings) {
    await this.act(() => control("PATCH", "/api/gallery", settings));
  }

  /** One presenter request; a refusal is shown under the controls. Resolves to the answer. */
  async act(request) {
    try {
      const answer = await request();
      this.say("");
      return answer;
    } catch (error) {
      this.say(error.message);
      return null;
    }
  }

  say(text) {
    const message = this.controls.querySelector("[data-gallery-message]");
    message.textContent = text;
    message.hidden = !text;
  }
}
