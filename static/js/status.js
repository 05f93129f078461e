// The status bar: what the run is doing, how far it got, on which data, who is watching, and
// whether this page is still connected. Every number says what it counts.

import { throttle } from "./throttle.js";

const STATUS_TEXT = {
  idle: "ready: not started",
  running: "training",
  paused: "paused",
  finished: "finished",
  diverged: "diverged",
};

export class StatusBar {
  constructor(bar, { onReset, onReconnect } = {}) {
    this.bar = bar;
    this.parts = Object.fromEntries(
      [...bar.querySelectorAll("[data-part]")].map((el) => [el.dataset.part, el]),
    );
    this.alert = document.querySelector("[data-alert]");
    this.alertText = document.querySelector("[data-alert-text]");
    this.resetButton = document.querySelector("[data-alert-reset]");
    this.resetButton?.addEventListener("click", () => onReset?.());
    this.parts.connection.addEventListener("click", () => onReconnect?.());
    this.run = null;
    this.race = null; // GET /api/race while a race is on
    this.timer = null;
    this.setProgress = throttle(this.showProgress.bind(this), 200);
  }

  /** The run as GET /api/run describes it, plus the server's message for this change. */
  setRun(run, message = null) {
    this.run = run;
    const status = run.status;
    this.parts.status.textContent = STATUS_TEXT[status] ?? status;
    this.parts.status.dataset.status = status;
    this.showProgress(run.epoch, run.examples_seen);
    const config = run.config || {};
    const speed = run.speed === null || run.speed === undefined ? "full speed" : `${run.speed} batches/s`;
    this.parts.network.textContent = `784-${(config.hidden || []).join("-")}-10 ${config.activation ?? ""} · η ${config.lr} · ${speed}`;
    this.setDataset(run.dataset);
    this.setAlert(status, message);
    if (this.race) this.showRace();
  }

  /** A race on (GET /api/race) or over (null). While it is on, the bar speaks for the race:
   *  `run` is then only its first lane, and each lane shows its own progress and divergence. */
  setRace(race) {
    const ended = this.race && !race;
    this.race = race;
    if (race) this.showRace();
    else if (ended && this.run) this.setRun(this.run);
  }

  showRace() {
    const race = this.race;
    this.parts.status.textContent = STATUS_TEXT[race.status] ?? race.status;
    this.parts.status.dataset.status = race.status;
    this.parts.epoch.textContent = `race of ${race.lanes.length} lanes`;
    this.parts.examples.textContent = "";
    const speed = race.speed === null || race.speed === undefined ? "full speed" : `${race.speed} rounds/s`;
    this.parts.network.textContent = speed;
    if (this.alert) this.alert.hidden = true;
  }

  showProgress(epoch, examplesSeen) {
    if (this.race) return;
    const epochs = this.run?.config?.epochs;
    const shown = Math.min(epoch + 1, epochs ?? Infinity);
    this.parts.epoch.textContent = epochs ? `epoch ${shown} of ${epochs}` : `epoch ${shown}`;
    this.parts.examples.textContent = `${examplesSeen.toLocaleString("en-US")} examples seen`;
  }

  setDataset(dataset) {
    if (!dataset) return;
    const sample = dataset.name === "sample";
    const name = sample ? "built-in sample" : "MNIST";
    this.parts.dataset.textContent = `${name}: ${dataset.train_size.toLocaleString("en-US")} training / ${dataset.test_size.toLocaleString("en-US")} test digits`;
    this.parts.dataset.classList.toggle("warn", sample);
    this.parts.dataset.title = dataset.note || dataset.source || "";
    const hint = document.querySelector("[data-sample-hint]");
    if (hint) {
      hint.hidden = !sample;
      hint.textContent = sample ? dataset.note || "Using the built-in sample of MNIST." : "";
    }
  }

  setAlert(status, message) {
    if (!this.alert) return;
    const diverged = status === "diverged";
    this.alert.hidden = !diverged;
    if (diverged) {
      this.alertText.textContent =
        message || "The cost became infinite or not a number: the learning rate is too high.";
    }
  }

  setViewers(count) {
    this.parts.viewers.textContent = `${count} ${count === 1 ? "browser" : "browsers"} watching`;
  }

  /** "open", "connecting", "closed" or "full" (with the time of the next attempt). */
  setConnection(state, retryAt) {
    clearInterval(this.timer);
    const el = this.parts.connection;
    el.dataset.state = state;
    if (state === "open") el.textContent = "connected";
    else if (state === "connecting") el.textContent = "connecting…";
    else {
      const why = state === "full" ? "the room is full, retrying" : "disconnected: retrying";
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        el.textContent = `${why} in ${seconds} s`;
      };
      tick();
      this.timer = setInterval(tick, 500);
    }
  }
}
