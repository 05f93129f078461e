// Presenter controls: presets, every run setting, start/pause/step/reset, speed, live learning
// rate. Only a browser holding the presenter token shows them; the server checks the token on
// every request anyway, so hiding them is for clarity, not security.

import { control } from "./api.js";

const PRESETS = {
  "3blue1brown": {
    hidden: [16, 16], activation: "sigmoid", loss: "mse", optimizer: "sgd", lr: 3.0, batch_size: 100,
  },
  nielsen: { hidden: [30], activation: "sigmoid", loss: "mse", optimizer: "sgd", lr: 3.0, batch_size: 10 },
  modern: {
    hidden: [128], activation: "relu", loss: "cross-entropy", optimizer: "adam", lr: 0.001, batch_size: 100,
  },
};

const SPEED_STEPS = 100; // slider positions; the last one means "as fast as possible"
const SLOWEST = 1; // mini-batches per second
const FASTEST = 1000;

/** Slider position (0..SPEED_STEPS) ↔ mini-batches per second on a log scale; top = null. */
function speedFromSlider(position) {
  if (position >= SPEED_STEPS) return null;
  const t = position / (SPEED_STEPS - 1);
  return +(SLOWEST * (FASTEST / SLOWEST) ** t).toPrecision(2);
}

function sliderFromSpeed(speed) {
  if (speed === null || speed === undefined) return SPEED_STEPS;
  const t = Math.log(Math.max(speed, SLOWEST) / SLOWEST) / Math.log(FASTEST / SLOWEST);
  return Math.round(Math.min(1, t) * (SPEED_STEPS - 1));
}

/** The speed in the slider's words; `unit` is what it counts ("mini-batches", or "rounds" in
 *  a race). */
function describeSpeed(speed, unit = "mini-batches") {
  return speed === null || speed === undefined ? "as fast as possible" : `${speed} ${unit}/s`;
}

export class Controls {
  constructor(panel) {
    this.panel = panel;
    this.form = panel.querySelector("form");
    this.message = panel.querySelector("[data-message]");
    this.speed = panel.querySelector("[data-speed]");
    this.speedLabel = panel.querySelector("[data-speed-label]");
    this.startPause = panel.querySelector('[data-action="start-pause"]');
    this.stepButton = panel.querySelector('[data-action="step"]');
    this.runId = null;
    this.run = null;
    this.race = null; // GET /api/race while a race is on
    this.status = "idle";
    panel.hidden = false;
    document.body.classList.add("presenter");
    this.listen();
  }

  listen() {
    for (const button of this.panel.querySelectorAll("[data-preset]")) {
      button.addEventListener("click", () => this.applyPreset(button.dataset.preset));
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.newRun(this.readConfig());
    });
    this.startPause.addEventListener("click", () => this.togglePlay());
    this.stepButton.addEventListener("click", () => this.step());
    this.panel.querySelector('[data-action="reset"]').addEventListener("click", () => this.reset());
    this.form.elements.lr.addEventListener("change", () => this.changeLearningRate());
    this.speed.addEventListener("input", () => {
      this.speedLabel.textContent = describeSpeed(speedFromSlider(+this.speed.value), this.speedUnit);
    });
    this.speed.addEventListener("change", () => {
      this.send("PATCH", "/api/run", { speed: speedFromSlider(+this.speed.value) });
    });
  }

  /** Bring the form in line with the server's run; fields being edited are left alone. */
  update(run) {
    if (!run) return;
    this.run = run;
    this.showPace();
    const fresh = run.id !== this.runId;
    this.runId = run.id;
    const elements = this.form.elements;
    for (const [name, value] of Object.entries(run.config || {})) {
      const field = elements[name];
      if (!field || field === document.activeElement) continue;
      if (fresh || name === "lr") field.value = Array.isArray(value) ? value.join(",") : value;
    }
  }

  /** A race on (GET /api/race) or over (null): while it is on, the buttons and the speed drive
   *  every lane, a step is one round and the speed counts rounds per second. */
  setRace(race) {
    this.race = race;
    this.showPace();
  }

  get speedUnit() {
    return this.race ? "rounds" : "mini-batches";
  }

  /** Start or Pause, and the speed, of the race if one is on, else of the run. */
  showPace() {
    const { status, speed } = this.race ?? this.run ?? {};
    this.status = status;
    const playing = status === "running";
    this.startPause.textContent = playing ? "Pause" : "Start";
    this.startPause.setAttribute("aria-pressed", String(playing));
    this.startPause.disabled = status === "finished" || status === "diverged";
    this.stepButton.title = this.race
      ? "Train one round: each lane trains until it has caught up with the others (key →)"
      : "Train exactly one mini-batch (key →)";
    // A lane's η is part of its config: the server refuses a live change during a race.
    this.form.elements.lr.disabled = Boolean(this.race);
    if (document.activeElement !== this.speed) {
      this.speed.value = sliderFromSpeed(speed);
      this.speedLabel.textContent = describeSpeed(speed, this.speedUnit);
    }
  }

  readConfig() {
    const elements = this.form.elements;
    const hidden = elements.hidden.value
      .split(/[\s,x×-]+/)
      .filter(Boolean)
      .map(Number);
    return {
      hidden,
      activation: elements.activation.value,
      loss: elements.loss.value,
      optimizer: elements.optimizer.value,
      lr: Number(elements.lr.value),
      batch_size: Number(elements.batch_size.value),
      epochs: Number(elements.epochs.value),
      seed: Number(elements.seed.value),
      weight_decay: Number(elements.weight_decay.value),
      lr_schedule: elements.lr_schedule.value,
      augment_shift: Number(elements.augment_shift.value),
    };
  }

  applyPreset(name) {
    const preset = PRESETS[name];
    const elements = this.form.elements;
    for (const [field, value] of Object.entries(preset)) {
      elements[field].value = Array.isArray(value) ? value.join(",") : value;
    }
    this.newRun(this.readConfig());
  }

  async newRun(config) {
    if (await this.send("POST", "/api/run", config)) this.say(`new run: 784-${config.hidden.join("-")}-10, paused`);
  }

  togglePlay() {
    return this.send("POST", this.status === "running" ? "/api/run/pause" : "/api/run/start");
  }

  /** One mini-batch; in a race, the rest of the round under way (or the next one), after
   *  which the race pauses. */
  step() {
    return this.send("POST", "/api/run/step");
  }

  reset() {
    return this.send("POST", "/api/run/reset");
  }

  changeLearningRate() {
    const lr = Number(this.form.elements.lr.value);
    return this.send("PATCH", "/api/run", { lr });
  }

  /** One presenter request; problems are shown next to the controls, naming the field. */
  async send(method, path, body) {
    try {
      await control(method, path, body);
      this.say("");
      return true;
    } catch (error) {
      this.say(error.message);
      return false;
    }
  }

  say(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }
}
