// The race's lanes, side by side: each one's name beside a stretch of its chart line, its
// network as it is now (network.js's view, drawn from the lane's snapshots), and its results:
// test accuracy, examples per second of training, and steps (mini-batches) so far.

import { lineSample } from "./line-sample.js";
import { NetworkView } from "./network.js";
import { formatTick } from "./series.js";
import { throttle } from "./throttle.js";

const CARD = document.createElement("template");
CARD.innerHTML =
  '<article class="lane">' +
  '<header class="lane-head"><span class="lane-key"></span><h3 class="lane-label"></h3>' +
  '<span class="lane-status" hidden></span></header>' +
  '<canvas class="lane-network"></canvas>' +
  '<dl class="lane-results">' +
  '<div title="Share of the test digits read right after the latest epoch"><dt>accuracy</dt><dd data-result="accuracy">–</dd></div>' +
  '<div title="Training examples per second of this lane\'s own training time"><dt>examples/s</dt><dd data-result="speed">–</dd></div>' +
  '<div title="Mini-batches trained: one step of gradient descent each"><dt>steps</dt><dd data-result="steps">0</dd></div>' +
  "</dl></article>";

const STATUS_TEXT = { finished: "finished", diverged: "diverged" };

export class RaceLanes {
  constructor(container) {
    this.container = container;
    this.cards = [];
  }

  /** One card per lane, in order: [{label, style: {colour, dash}}]. */
  setLanes(lanes) {
    this.cards = lanes.map((lane, index) => makeCard(lane, index));
    this.container.replaceChildren(...this.cards.map((card) => card.element));
    this.container.style.setProperty("--lanes", String(lanes.length));
  }

  /** Lane `lane`'s network view (setModel, setProbe, setNudges, reset). */
  view(lane) {
    return this.cards[lane].network;
  }

  get views() {
    return this.cards.map((card) => card.network);
  }

  /** `results`: {accuracy (null before an epoch ends), examplesSeen, seconds, steps, status,
   *  message}; shown at most four times a second. */
  showResults(lane, results) {
    this.cards[lane].show(results);
  }
}

function makeCard({ label, style }, index) {
  const element = CARD.content.firstElementChild.cloneNode(true);
  element.dataset.lane = String(index);
  element.style.setProperty("--lane-colour", style.colour);
  element.querySelector(".lane-key").append(lineSample(style));
  element.querySelector(".lane-label").textContent = label;
  const canvas = element.querySelector("canvas");
  canvas.setAttribute("aria-label", `${label}: its network now`);
  const parts = Object.fromEntries(
    [...element.querySelectorAll("[data-result]")].map((dd) => [dd.dataset.result, dd]),
  );
  const status = element.querySelector(".lane-status");
  const show = throttle((results) => {
    parts.accuracy.textContent = percent(results.accuracy);
    parts.speed.textContent = perSecond(results.examplesSeen, results.seconds);
    parts.steps.textContent = count(results.steps);
    status.hidden = !STATUS_TEXT[results.status];
    status.textContent = STATUS_TEXT[results.status] ?? "";
    status.dataset.status = results.status;
    status.title = results.message ?? "";
  }, 250);
  return { element, network: new NetworkView(element), show };
}

function percent(accuracy) {
  return accuracy === null || accuracy === undefined ? "–" : `${(accuracy * 100).toFixed(1)}%`;
}

/** Examples per second of the lane's own training, or a dash before any. */
function perSecond(examples, seconds) {
  if (!(seconds > 0) || !examples) return "–";
  const rate = examples / seconds;
  return rate >= 100 ? count(Math.round(rate)) : rate.toPrecision(2);
}

/** "8,279", "48.2k", "115k", "1.2M": at most five characters, so that a lane's three results
 *  fit its card however narrow a projector makes it. */
function count(value) {
  return value < 10_000 ? value.toLocaleString("en-US") : formatTick(value);
}
