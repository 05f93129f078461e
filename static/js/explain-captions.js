// What explain mode says: the title and caption of each step, one to three plain sentences
// as 3Blue1Brown would say them, about this example's own numbers, and how those numbers read.

import { strongestNudge } from "./explain-trace.js";

/** Step n's title is TITLES[n - 1]. */
export const TITLES = [
  "Forward pass, layer by layer",
  "Cost, and what each output wants",
  "One output neuron's three levers",
  "Wishes add up, backwards",
  "Back to the first layer",
  "One example vs. a mini-batch",
  "Apply: one gradient step",
];

/** A number with `digits` decimals; "–" for a missing one. */
export function fixed(v, digits = 2) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
}

/** A signed number; tiny ones keep two significant digits instead of reading "0.000". */
export function signed(v, digits = 2) {
  const size = Math.abs(v);
  const text = size === 0 || size >= 0.5 * 10 ** -digits ? size.toFixed(digits) : size.toPrecision(2);
  return `${v >= 0 ? "+" : "−"}${text}`;
}

/** The step's one to three plain sentences, about the numbers on screen. */
export function caption(step, trace, neuron, lesson, presenter) {
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
