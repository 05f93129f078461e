// The websocket frames as the browser sees them: the mirror of server/frames.py, whose
// docstring is the schema. Only the decoders for the compact encodings and the constants the
// page needs live here. An `explain` frame's `key` names the trace the presenter is showing:
// GET /api/explain/{key} answers it.
//
// A `gallery` frame is the room's visible drawings read by the network after `batch`
// mini-batches of `run`: `items` [{id, label (meant), digit (read), confidence, held_out,
// author only while settings.names}], `count`, `accuracy`, `confusion` (DIGITS x DIGITS,
// row = label, column = digit), `training` and `held_out` ({count, accuracy}), `settings`
// ({learn, hold_out, names}), `capacity`, `version` (changes of drawings and settings),
// `evaluations` (the room's score at each evaluation of the run; `batch` an index, as in
// `eval`) and `test` ({epoch, batch (a count), accuracy, confusion} of the MNIST test set, or
// null). A drawing's picture is GET /api/gallery/{id}/image.png.
//
// The race (issue 12): `batches`, `eval` and `snapshot` carry `lane` (an index, null outside a
// race; `run` is then that lane's run id), and `batches` also `seconds` (the lane's training
// seconds after its last batch). `hello.race` and `status.race` are null or GET /api/race; in
// `hello.race` every lane also has `history` and `model`, shaped as `hello.history` and
// `hello.model`, and every lane's latest snapshot follows the hello.

/** The walk-through's steps (an `explain` frame's `step` is 1..EXPLAIN_STEPS, null when it ends):
 *  forward pass, cost, one output's levers, nudges summed backwards, first layer, one example
 *  beside a mini-batch, apply. */
export const EXPLAIN_STEPS = 7;
/** A digit is IMAGE_SIDE × IMAGE_SIDE pixels, row by row: the network's PIXELS inputs (the
 *  browser's copy of engine/data/mnist.py's; other modules import these). */
export const IMAGE_SIDE = 28;
export const PIXELS = IMAGE_SIDE * IMAGE_SIDE;
/** The digits 0-9: the network's outputs, and the rows and columns of a confusion matrix. */
export const DIGITS = 10;

/** The bytes of a base64 string. */
function decodeBytes(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** A quantised matrix {shape, scale, data} as {rows, cols, values: Float32Array} (row-major):
 *  value = int8 * scale / 127. */
export function dequantise(matrix) {
  const codes = new Int8Array(decodeBytes(matrix.data).buffer);
  const [rows, cols] = matrix.shape;
  const factor = matrix.scale / 127;
  const values = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) values[i] = codes[i] * factor;
  return { rows, cols, values };
}

/** A probe's or a classified digit's base64 uint8 pixels as PIXELS values in [0, 1]. */
export function decodePixels(base64) {
  return Float32Array.from(decodeBytes(base64), (byte) => byte / 255);
}

/** A frame's lane in a race, or null for the single run's frames. */
export function laneOf(frame) {
  return frame.lane ?? null;
}

/** The network of a hello's `model` or a snapshot, as the network view draws it. */
export function decodeModel(layerSizes, activation, quantisedWeights) {
  return {
    layerSizes,
    activation,
    weights: quantisedWeights.map((matrix) => ({ ...dequantise(matrix), scale: matrix.scale })),
  };
}

/** A snapshot's test digit and its activations, as the network view's probe. */
export function decodeProbe(snapshot) {
  return {
    source: "test",
    index: snapshot.probe.index,
    label: snapshot.probe.label,
    pixels: decodePixels(snapshot.probe.pixels),
    activations: snapshot.activations,
  };
}
