// One example's trace as the server sends it (POST /api/explain, GET /api/explain/{key}),
// decoded once, and the questions that the captions and the drawing ask of it. Every number
// in it is the engine's own: the page computes nothing beyond products for drawing.

import { decodePixels, dequantise } from "./frames.js";
import { brightnessScale } from "./network.js";

/** The server's answer, with its compact encodings decoded. */
export function prepare(answer) {
  return {
    ...answer,
    pixels: decodePixels(answer.example.pixels),
    gradients: answer.layers.map((layer) => dequantise(layer.weight_gradient)),
    outputWeights: dequantise(answer.output_weights),
    batchFirst: dequantise(answer.batch_average.first_layer),
    batchOutput: dequantise(answer.batch_average.output_layer),
  };
}

/** The request body that names the trace's example again: {index} or {pixels, label}. */
export function exampleBody(trace) {
  const { index, label } = trace.example;
  return index !== null ? { index } : { pixels: Array.from(trace.pixels), label };
}

/** The neuron of the last hidden layer with the largest nudge, up or down. */
export function strongestNudge(trace) {
  const layer = trace.layers.length - 2;
  const nudges = trace.layers[layer].nudges;
  let index = 0;
  nudges.forEach((n, k) => {
    if (Math.abs(n) > Math.abs(nudges[index])) index = k;
  });
  return { index, layer };
}

/** Neuron k's brightness (0..1) in layer `layer` (0: the first hidden layer), as the network
 *  view colours it. */
export function brightness(trace, layer) {
  const values = trace.layers[layer].activations;
  const scale = brightnessScale(trace.activation, layer === trace.layers.length - 1, values);
  return (k) => scale(values[k]);
}

export function layerName(trace, layer) {
  return layer === trace.layers.length - 1 ? "output" : `hidden ${layer + 1}`;
}

/** The title of a layer's column, with how many of its neurons are drawn. */
export function columnTitle(trace, layer, count) {
  const total = trace.layer_sizes[layer + 1];
  const name = layerName(trace, layer);
  return count < total ? `${name}: ${count} of ${total}` : name;
}
