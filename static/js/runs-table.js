// The list of runs on the runs page: one row per run (tick to compare, name to replay, what it
// is and how long it trained, its test accuracy, a sparkline of its cost). Rows are kept between refreshes, so a
// refresh every few seconds changes only the text that changed, and a sparkline is fetched
// only once its row scrolls into view: a library of a thousand runs stays quick.

import { cssVar, fitCanvas } from "./canvas.js";

/** "12 s", "3 min 05 s", "1 h 20 min": how long a run trained. */
function duration(seconds) {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** A test accuracy as "89.4%", or a dash before the first epoch has ended. */
export function percent(accuracy) {
  return accuracy === null || accuracy === undefined ? "–" : `${(accuracy * 100).toFixed(1)}%`;
}

/** One row's markup, parsed once and cloned for every run. */
const ROW = document.createElement("template");
ROW.innerHTML =
  '<div class="run-row" role="row"><span role="cell"><input type="checkbox"></span>' +
  '<span role="cell"><button type="button" class="run-name"></button>' +
  '<span class="live-pill" hidden>live</span><button type="button" class="race-pill" hidden></button>' +
  '<span class="run-sub"></span></span>' +
  '<span role="cell" class="number accuracy"></span>' +
  '<span role="cell" class="spark"><canvas></canvas></span></div>';

const ROWS_PER_FRAME = 120;
const WHEN = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

export class RunTable {
  /**
   * `onTick(id, ticked)`, `onSelect(id)`, `onRace(raceId)` (a race lane's pill: lay the whole
   * race over each other); `sparkline(run)` resolves to the run's cost curve ({cost: [...]})
   * for its row.
   */
  constructor(body, { onTick, onSelect, onRace, sparkline }) {
    this.body = body;
    this.onTick = onTick;
    this.onSelect = onSelect;
    this.onRace = onRace;
    this.sparkline = sparkline;
    this.rows = new Map(); // run id → {element, parts, run, shown, curve, wanted, inView}
    this.wanted = null; // what show() was last asked to show
    this.nextFrame = null;
    this.visible = new IntersectionObserver((entries) => this.rowsSeen(entries), {
      root: body.closest(".table-wrap"),
      rootMargin: "200px 0px",
    });
  }

  /** Show `runs` in this order; `styles` maps a ticked run's id to its line style. New rows
   *  are made ROWS_PER_FRAME at a time, one batch per animation frame, so that a library of
   *  a thousand runs never holds the page up for long. */
  show(runs, styles, selected) {
    this.wanted = { runs, styles, selected };
    cancelAnimationFrame(this.nextFrame);
    this.place(0, null);
  }

  /** Rows for runs[from...], after the row `previous`. */
  place(from, previous) {
    const { runs, styles, selected } = this.wanted;
    let made = 0;
    for (let i = from; i < runs.length; i++) {
      const run = runs[i];
      if (!this.rows.has(run.id) && made++ === ROWS_PER_FRAME) {
        this.nextFrame = requestAnimationFrame(() => this.place(i, previous));
        return;
      }
      const row = this.rows.get(run.id) ?? this.addRow(run);
      this.fill(row, run, styles.get(run.id), run.id === selected);
      const expected = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== row.element) this.body.insertBefore(row.element, expected);
      previous = row.element;
    }
    this.dropAllBut(new Set(runs.map((run) => run.id)));
  }

  dropAllBut(kept) {
    for (const [id, row] of this.rows) {
      if (kept.has(id)) continue;
      this.visible.unobserve(row.element);
      row.element.remove();
      this.rows.delete(id);
    }
  }

  /** Redraw the sparklines in view (the theme or the size changed; the others are drawn
   *  when they scroll into view). */
  redraw() {
    for (const row of this.rows.values()) if (row.inView && row.curve) this.drawSparkline(row);
  }

  addRow(run) {
    const element = ROW.content.firstElementChild.cloneNode(true);
    element.dataset.id = run.id;
    const parts = {
      tick: element.querySelector("input"),
      name: element.querySelector(".run-name"),
      live: element.querySelector(".live-pill"),
      race: element.querySelector(".race-pill"),
      sub: element.querySelector(".run-sub"),
      accuracy: element.querySelector(".accuracy"),
      spark: element.querySelector("canvas"),
    };
    const row = { element, parts, run, shown: null, curve: null, wanted: null, inView: false };
    parts.tick.addEventListener("change", () => this.onTick(row.run.id, parts.tick.checked));
    parts.name.addEventListener("click", () => this.onSelect(row.run.id));
    parts.race.addEventListener("click", () => this.onRace(row.run.race.id));
    this.rows.set(run.id, row);
    this.visible.observe(element);
    return row;
  }

  /** Write the row only where the run, its style or the choice changed: a refresh of a
   *  thousand unchanged rows then costs no style or layout work. */
  fill(row, run, style, selected) {
    row.run = run;
    const shown = `${run.name}|${run.summary}|${run.updated_at}|${run.live}|${run.status}|${run.race?.id}|${style?.colour}|${selected}`;
    if (shown !== row.shown) {
      row.shown = shown;
      this.write(row, run, style, selected);
    }
    if (row.inView) this.fetchSparkline(row);
  }

  write(row, run, style, selected) {
    const { parts } = row;
    parts.name.textContent = run.name;
    parts.name.title = `Replay ${run.name}`;
    parts.tick.checked = Boolean(style);
    parts.tick.setAttribute("aria-label", `compare ${run.name}`);
    parts.tick.style.accentColor = style ? style.colour : ""; // the run's colour in the charts
    parts.live.hidden = !run.live;
    parts.race.hidden = !run.race;
    if (run.race) {
      // The lane's label, unless its name says it already (the server names lanes after it).
      const { label, lane } = run.race;
      parts.race.textContent = run.name.includes(label) ? `race · lane ${lane + 1}` : `race: ${label}`;
      parts.race.title = `Lane ${lane + 1}, “${label}”, of a race: click to compare all its lanes`;
    }
    parts.sub.textContent = subtitle(run);
    parts.accuracy.textContent = percent(run.test_accuracy);
    parts.accuracy.title = run.epochs_done ? `after epoch ${run.epochs_done}` : "no epoch finished yet";
    row.element.classList.toggle("selected", selected);
  }

  rowsSeen(entries) {
    for (const entry of entries) {
      const row = this.rows.get(entry.target.dataset.id);
      if (!row) continue;
      row.inView = entry.isIntersecting;
      if (!row.inView) continue;
      if (row.curve) this.drawSparkline(row);
      this.fetchSparkline(row);
    }
  }

  /** Fetch the row's curve once per change of the run (its updated_at). */
  async fetchSparkline(row) {
    const version = `${row.run.id}@${row.run.updated_at}`;
    if (row.wanted === version || row.run.examples_seen === 0) return;
    row.wanted = version;
    try {
      row.curve = await this.sparkline(row.run);
    } catch {
      row.wanted = null; // try again at the next refresh
      return;
    }
    this.drawSparkline(row);
  }

  drawSparkline(row) {
    const fitted = fitCanvas(row.parts.spark);
    if (!fitted) return;
    const { ctx, width, height } = fitted;
    ctx.clearRect(0, 0, width, height);
    const costs = (row.curve?.cost ?? []).filter(Number.isFinite);
    if (costs.length < 2) return;
    const lo = Math.min(...costs);
    const span = Math.max(...costs) - lo || 1;
    const pad = 2;
    ctx.strokeStyle = cssVar("--fg");
    ctx.lineWidth = 1.5;
    ctx.lineJoin = "round";
    ctx.beginPath();
    costs.forEach((cost, i) => {
      const x = pad + (i / (costs.length - 1)) * (width - 2 * pad);
      const y = pad + (1 - (cost - lo) / span) * (height - 2 * pad);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

/** Under the name: the config where the name does not say it, then the data, how far and
 *  how long it trained, where it stands unless finished, and when it began. */
function subtitle(run) {
  const parts = [];
  if (run.summary !== run.name) parts.push(run.summary);
  parts.push(run.dataset === "sample" ? "sample" : "MNIST");
  parts.push(`${run.epochs_done} ${run.epochs_done === 1 ? "epoch" : "epochs"} in ${duration(run.seconds)}`);
  if (run.status !== "finished") parts.push(run.live && run.status === "running" ? "training" : run.status);
  parts.push(WHEN.format(new Date(run.created_at)));
  return parts.join(" · ");
}
