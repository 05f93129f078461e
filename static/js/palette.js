// One palette for the whole page, so the same colour means the same thing on every panel.
// Signed values (weights, gradients, nudges): blue = positive, orange = negative, neutral = zero.
// Blue against orange stays distinct for red-green colour blindness (unlike red against green).
// Unsigned activations: a sequential scale from dark (0) to bright (1).
// Runs compared side by side (the runs page): a few colours from Paul Tol's colour-blind-safe
// "muted" scheme, none of them the blue or orange that mean a sign, each with its own dash
// pattern so that runs stay apart in grey on a washed-out projector.

const POSITIVE = [33, 102, 172]; // blue
const NEGATIVE = [214, 96, 0]; // orange
const ZERO = { light: [247, 247, 247], dark: [58, 62, 70] };
const SEQ_DARK = [16, 18, 24];
const SEQ_BRIGHT = [255, 250, 235];

const RUN_COLOURS = {
  light: ["#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499"],
  dark: ["#DDCC77", "#44AA99", "#CC6677", "#88CCEE", "#AA4499", "#999933"],
};
const RUN_DASHES = [[], [10, 5], [3, 4], [14, 4, 3, 4], [6, 6], [2, 3, 8, 3]];

let theme = "light";
let divergingTable = buildDiverging();
const sequentialTable = buildSequential();

function mix(a, b, t) {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
}

/** 256 colours for v in [-1, 1]; magnitudes pass a square root so small values still show. */
function buildDiverging() {
  const zero = ZERO[theme];
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const v = (i / 255) * 2 - 1;
    const rgb = mix(zero, v >= 0 ? POSITIVE : NEGATIVE, Math.sqrt(Math.abs(v)));
    table.set(rgb, i * 3);
  }
  return table;
}

function buildSequential() {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) table.set(mix(SEQ_DARK, SEQ_BRIGHT, i / 255), i * 3);
  return table;
}

export function setTheme(name) {
  theme = name === "dark" ? "dark" : "light";
  divergingTable = buildDiverging();
}

function index(v) {
  return Math.max(0, Math.min(255, Math.round(v * 255))) * 3;
}

/** Table offset of a signed value v in [-1, 1] (clamped). */
function divergingIndex(v) {
  return index((v + 1) / 2);
}

/** The pure end colours, for lines and bars that carry magnitude in their size instead. */
export function signColour(v, alpha = 1) {
  const [r, g, b] = v >= 0 ? POSITIVE : NEGATIVE;
  return `rgba(${r},${g},${b},${alpha})`;
}

export function sequential(a) {
  const i = index(a);
  return `rgb(${sequentialTable[i]},${sequentialTable[i + 1]},${sequentialTable[i + 2]})`;
}

/** Fill `image` (ImageData, 28x28 or any size) from signed values scaled into [-1, 1]. */
export function paintDiverging(image, values, scale) {
  const data = image.data;
  for (let p = 0; p < values.length; p++) {
    const i = divergingIndex(values[p] / scale);
    data[p * 4] = divergingTable[i];
    data[p * 4 + 1] = divergingTable[i + 1];
    data[p * 4 + 2] = divergingTable[i + 2];
    data[p * 4 + 3] = 255;
  }
}

/** Fill `image` from unsigned values in [0, scale] on the sequential scale. */
export function paintSequential(image, values, scale = 1) {
  const data = image.data;
  for (let p = 0; p < values.length; p++) {
    const i = index(values[p] / scale);
    data[p * 4] = sequentialTable[i];
    data[p * 4 + 1] = sequentialTable[i + 1];
    data[p * 4 + 2] = sequentialTable[i + 2];
    data[p * 4 + 3] = 255;
  }
}

/** Run number `i`'s line: its colour in the current theme and its dash pattern (in units of
 *  the line width, for ctx.setLineDash after scaling). */
export function runStyle(i) {
  const colours = RUN_COLOURS[theme];
  return { colour: colours[i % colours.length], dash: RUN_DASHES[i % RUN_DASHES.length] };
}
