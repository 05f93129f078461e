// The race (issue 12): two to four networks trained side by side, one lane each, in the one
// trainer process. This module holds what the page knows about the race (GET /api/race, from
// hello and status frames) and turns each lane's frames into points of the race chart
// (race-chart.js) and the network and results of its lane (race-lanes.js). A page switches to
// the race when a frame carries one, and back when a frame says it has ended.

import { decodeModel, decodeProbe } from "./frames.js";
import { runStyle } from "./palette.js";
import { RaceChart } from "./race-chart.js";
import { RaceLanes } from "./race-lanes.js";

// A round ends when every lane has seen as many examples as the others, or trained as long.
const PACE_TEXT = { examples: "of equal examples", time: "of equal training time" };
const STATUS_TEXT = {
  idle: "ready: not started",
  running: "racing",
  paused: "paused",
  finished: "finished",
};

export class Race {
  /** `onToggle(on)`: the page switched to the race (true) or back to the single run. */
  constructor(section, { onToggle }) {
    this.section = section;
    this.onToggle = onToggle;
    this.chart = new RaceChart(section.querySelector("[data-race-chart]"));
    this.lanes = new RaceLanes(section.querySelector("[data-race-lanes]"));
    this.readout = section.querySelector("[data-race-readout]");
    this.startPause = section.querySelector('[data-race-action="start-pause"]');
    this.xSelect = section.querySelector("[data-race-x]");
    this.body = null; // the latest GET /api/race, null when no race is on
    this.lanesState = [];
    this.trainSize = null; // training examples per epoch, for the history's x values
    this.xSelect.addEventListener("change", () => this.chart.setXAxis(this.xSelect.value));
    for (const box of section.querySelectorAll("[data-race-log]")) {
      box.addEventListener("change", () => this.chart.setLog({ [box.dataset.raceLog]: box.checked }));
    }
  }

  get on() {
    return this.body !== null;
  }

  /** A hello: `race` null, or GET /api/race with every lane's history and model; `run` is
   *  hello.run (its dataset says how many examples an epoch has). */
  fromHello(race, run) {
    this.trainSize = run.dataset?.train_size ?? this.trainSize;
    if (!race) return this.end();
    this.begin(race);
    race.lanes.forEach((lane, index) => {
      if (lane.history) this.addHistory(index, lane);
      if (lane.model) {
        const { layer_sizes: sizes, activation, weights } = lane.model;
        this.lanes.view(index).setModel(decodeModel(sizes, activation, weights));
      }
    });
  }

  /** A status frame's race (no histories), or null: the race has ended. */
  follow(race) {
    if (!race) return this.end();
    if (race.id !== this.body?.id || race.lanes.length !== this.lanesState.length) return this.begin(race);
    this.body = race;
    race.lanes.forEach((lane, index) => {
      const state = this.lanesState[index];
      if (lane.run !== state.run) this.restartLane(index, lane.run);
      Object.assign(state, { status: lane.status, message: lane.message });
      state.accuracy = lane.test_accuracy ?? state.accuracy;
      this.showLane(index);
    });
    this.showRace();
  }

  /** A new race: every lane starts empty. */
  begin(race) {
    const wasOn = this.on;
    this.body = race;
    this.lanesState = race.lanes.map((lane) => ({
      run: lane.run,
      config: lane.config,
      nextBatch: 0,
      examplesSeen: lane.examples_seen,
      seconds: lane.seconds,
      steps: lane.steps,
      accuracy: lane.test_accuracy,
      status: lane.status,
      message: lane.message,
    }));
    const lanes = race.lanes.map((lane, index) => ({ label: lane.label, style: runStyle(index) }));
    this.chart.setLanes(lanes);
    this.lanes.setLanes(lanes);
    race.lanes.forEach((_, index) => this.showLane(index));
    this.showRace();
    this.section.hidden = false;
    if (!wasOn) this.onToggle(true);
  }

  end() {
    if (!this.on) return;
    this.body = null;
    this.lanesState = [];
    this.section.hidden = true;
    this.onToggle(false);
  }

  /** The lane's run was replaced (a reset): its line and network start again. */
  restartLane(index, run) {
    const fresh = { run, nextBatch: 0, examplesSeen: 0, seconds: 0, steps: 0, accuracy: null };
    Object.assign(this.lanesState[index], fresh);
    this.chart.clearLane(index);
    this.lanes.view(index).reset();
  }

  /** The lane state a lane frame belongs to; null outside a race or for another race's run. */
  laneFor(frame) {
    const state = this.lanesState[frame.lane];
    if (!state) return null;
    // Frames come in order, so a new run id in a lane's frame means the lane was reset.
    if (frame.run !== state.run) this.restartLane(frame.lane, frame.run);
    return state;
  }

  /** A late joiner's history of one lane. Its points hold no x values: examples seen follow
   *  from the batch count (batches are the lane's batch size, the epoch's last one what is
   *  left, one above the training set's size the whole set), and seconds are taken as even
   *  across the lane's steps so far, which they are up to the pace's interleaving. */
  addHistory(index, lane) {
    const { history } = lane;
    const state = this.lanesState[index];
    const examplesAfter = examplesAfterCount(lane.config.batch_size, this.trainSize);
    let before = examplesAfter(history.first_batch);
    history.costs.forEach((cost, i) => {
      const count = Math.min(history.first_batch + (i + 1) * history.stride, history.next_batch);
      const examples = examplesAfter(count);
      const seconds = lane.steps ? (lane.seconds * count) / lane.steps : 0;
      this.chart.add(index, examples, seconds, cost, examples - before);
      before = examples;
    });
    const last = history.evaluations[history.evaluations.length - 1];
    Object.assign(state, {
      nextBatch: history.next_batch,
      accuracy: last ? last.accuracy : state.accuracy,
    });
    this.showLane(index);
  }

  /** A lane's `batches` frame: each new mini-batch's cost, at x values spread evenly from
   *  where the lane was to where the frame says it is now. */
  addBatches(frame) {
    const state = this.laneFor(frame);
    if (!state) return;
    const end = frame.first_batch + frame.costs.length;
    const fresh = frame.costs.slice(Math.max(0, state.nextBatch - frame.first_batch));
    if (fresh.length === 0) return;
    const seconds = frame.seconds ?? state.seconds;
    const perBatch = (frame.examples_seen - state.examplesSeen) / fresh.length;
    const secondsPerBatch = (seconds - state.seconds) / fresh.length;
    fresh.forEach((cost, i) => {
      const examples = state.examplesSeen + perBatch * (i + 1);
      this.chart.add(frame.lane, examples, state.seconds + secondsPerBatch * (i + 1), cost, perBatch);
    });
    Object.assign(state, { nextBatch: end, steps: end, examplesSeen: frame.examples_seen, seconds });
    this.showLane(frame.lane);
  }

  addEvaluation(frame) {
    const state = this.laneFor(frame);
    if (!state) return;
    state.accuracy = frame.accuracy;
    this.showLane(frame.lane);
  }

  setSnapshot(frame) {
    const state = this.laneFor(frame);
    if (!state) return;
    const view = this.lanes.view(frame.lane);
    view.setModel(decodeModel(frame.layer_sizes, state.config.activation, frame.weights));
    view.setProbe(decodeProbe(frame));
    view.setNudges(frame.nudges);
  }

  showLane(index) {
    const state = this.lanesState[index];
    this.chart.setStatus(index, state.status);
    this.lanes.showResults(index, state);
  }

  showRace() {
    const race = this.body;
    const rounds = `${race.rounds.toLocaleString("en-US")} ${race.rounds === 1 ? "round" : "rounds"}`;
    const status = race.stepping ? "stepping a round" : (STATUS_TEXT[race.status] ?? race.status);
    this.readout.textContent = `${status} · ${rounds} ${PACE_TEXT[race.pace] ?? ""}`;
    if (this.startPause) {
      const playing = race.status === "running";
      this.startPause.textContent = playing ? "Pause" : "Start";
      this.startPause.setAttribute("aria-pressed", String(playing));
      this.startPause.disabled = race.status === "finished";
    }
  }

  /** The other x axis: examples seen ↔ seconds of training (key X). */
  toggleXAxis() {
    this.xSelect.value = this.xSelect.value === "examples" ? "seconds" : "examples";
    this.chart.setXAxis(this.xSelect.value);
  }

  // The page's frame loop draws the race as one panel: the chart and the lanes' networks.
  get dirty() {
    return this.chart.dirty || this.lanes.views.some((view) => view.dirty);
  }

  render() {
    if (this.chart.dirty) this.chart.render();
    for (const view of this.lanes.views) if (view.dirty) view.render();
  }

  markDirty() {
    this.chart.dirty = true;
    for (const view of this.lanes.views) view.dirty = true;
  }
}

/** Examples a lane has seen after `count` mini-batches of `batchSize` from `trainSize`
 *  examples an epoch (unknown: every batch full). */
function examplesAfterCount(batchSize, trainSize) {
  if (!trainSize) return (count) => count * batchSize;
  const batch = Math.min(batchSize, trainSize);
  const perEpoch = Math.ceil(trainSize / batch);
  return (count) =>
    Math.floor(count / perEpoch) * trainSize + Math.min((count % perEpoch) * batch, trainSize);
}
