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

const WHEN = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

export class RunTable {
  /**
   * `onTick(id, ticked)`, `onSelect(id)`; `sparkline(run)` resolves to the run's cost curve
   * ({cost: [...]}) for its row.
   */
  constructor(tbody, { onTick, onSelect, sparkline }) {
    this.tbody = tbody;
    this.onTick = onTick;
    this.onSelect = onSelect;
    this.sparkline = sparkline;
    this.rows = new Map(); // run id → {tr, parts, run, curve, drawnFor}
    this.visible = new IntersectionObserver((entries) => this.rowsSeen(entries), {
      root: tbody.closest(".table-wrap"),
      rootMargin: "200px 0px",
    });
  }

  /** Show `runs` in this order; `styles` maps a ticked run's id to its line style. */
  show(runs, styles, selected) {
    const seen = new Set();
    let previous = null;
    for (const run of runs) {
      seen.add(run.id);
      const row = this.rows.get(run.id) ?? this.addRow(run);
      this.fill(row, run, styles.get(run.id), run.id === selected);
      const expected = previous ? previous.nextSibling : this.tbody.firstChild;
      if (expected !== row.tr) this.tbody.insertBefore(row.tr, expected);
      previous = row.tr;
    }
    for (const [id, row] of this.rows) {
      if (seen.has(id)) continue;
      this.visible.unobserve(row.tr);
      row.tr.remove();
      this.rows.delete(id);
    }
  }

  /** Redraw the sparklines (the theme changed). */
  redraw() {
    for (const row of this.rows.values()) this.drawSparkline(row);
  }

  addRow(run) {
    const tr = document.createElement("tr");
    tr.dataset.id = run.id;
    tr.innerHTML = `
      <td class="tick"><input type="checkbox"></td>
      <td class="run"><button type="button" class="run-name"></button><span class="live-pill" hidden>live</span><span class="run-sub"></span></td>
      <td class="number accuracy"></td>
      <td class="spark"><canvas></canvas></td>`;
    const parts = {
      tick: tr.querySelector("input"),
      name: tr.querySelector(".run-name"),
      live: tr.querySelector(".live-pill"),
      sub: tr.querySelector(".run-sub"),
      accuracy: tr.querySelector(".accuracy"),
      spark: tr.querySelector("canvas"),
    };
    const row = { tr, parts, run, curve: null, drawnFor: null, wanted: null, inView: false };
    parts.tick.addEventListener("change", () => this.onTick(row.run.id, parts.tick.checked));
    parts.name.addEventListener("click", () => this.onSelect(row.run.id));
    this.rows.set(run.id, row);
    this.visible.observe(tr);
    return row;
  }

  fill(row, run, style, selected) {
    row.run = run;
    const { parts } = row;
    setText(parts.name, run.name);
    parts.name.title = `Replay ${run.name}`;
    parts.tick.checked = Boolean(style);
    parts.tick.setAttribute("aria-label", `compare ${run.name}`);
    parts.tick.style.accentColor = style ? style.colour : ""; // the run's colour in the charts
    parts.live.hidden = !run.live;
    setText(parts.sub, subtitle(run));
    setText(parts.accuracy, percent(run.test_accuracy));
    parts.accuracy.title = run.epochs_done ? `after epoch ${run.epochs_done}` : "no epoch finished yet";
    row.tr.classList.toggle("selected", selected);
    row.tr.classList.toggle("untrained", run.examples_seen === 0);
    if (row.inView) this.fetchSparkline(row);
  }

  rowsSeen(entries) {
    for (const entry of entries) {
      const row = this.rows.get(entry.target.dataset.id);
      if (!row) continue;
      row.inView = entry.isIntersecting;
      if (row.inView) this.fetchSparkline(row);
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

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}
