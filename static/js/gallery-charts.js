// The gallery's charts: a confusion matrix (rows: the digit meant, columns: the digit the
// network reads; the diagonal, read right, in blue, confusions in orange, each stronger the
// larger its share of the row) and the share read right per digit, the room's beside the MNIST
// test set's, in the two colours the accuracy chart gives them.

import { cssVar, fitCanvas, font } from "./canvas.js";
import { DIGITS } from "./frames.js";
import { signColour } from "./palette.js";

/** Per digit, the share of its row on the diagonal: null for a digit nobody drew. */
export function perDigitAccuracy(confusion) {
  return confusion.map((row, digit) => {
    const total = row.reduce((sum, count) => sum + count, 0);
    return total ? row[digit] / total : null;
  });
}

/** Draw `confusion` (10x10 counts) filling `canvas`; `size` is the chart font size. */
export function drawConfusion(canvas, confusion, size) {
  const fitted = fitCanvas(canvas);
  if (!fitted) return;
  const { ctx, width, height } = fitted;
  ctx.clearRect(0, 0, width, height);
  const margin = size * 2.6; // the axis title and the digits beside each axis
  const side = Math.max(0, Math.min(width - margin, height - margin));
  const cell = side / DIGITS;
  const left = margin + (width - margin - side) / 2;
  const top = margin;
  drawAxes(ctx, { left, top, cell, size });
  const numbers = Math.max(9, Math.min(size * 0.8, cell * 0.5));
  ctx.font = font(numbers, 600);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  confusion.forEach((row, meant) => {
    const total = row.reduce((sum, count) => sum + count, 0);
    row.forEach((count, read) => {
      const x = left + read * cell;
      const y = top + meant * cell;
      const share = total ? count / total : 0;
      ctx.fillStyle = count ? signColour(meant === read ? 1 : -1, 0.18 + 0.82 * share) : cssVar("--grid");
      ctx.fillRect(x + 0.5, y + 0.5, cell - 1, cell - 1);
      const text = String(count);
      if (count && ctx.measureText(text).width < cell * 0.9 && numbers < cell * 0.9) {
        ctx.fillStyle = share > 0.45 ? "#fff" : cssVar("--fg");
        ctx.fillText(text, x + cell / 2, y + cell / 2 + 0.5);
      }
    });
  });
}

function drawAxes(ctx, { left, top, cell, size }) {
  const digitSize = Math.min(size, cell * 0.9);
  ctx.fillStyle = cssVar("--muted");
  ctx.font = font(digitSize);
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  for (let digit = 0; digit < DIGITS; digit++) {
    ctx.fillText(String(digit), left + (digit + 0.5) * cell, top - size * 0.15);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let digit = 0; digit < DIGITS; digit++) {
    ctx.fillText(String(digit), left - size * 0.3, top + (digit + 0.5) * cell);
  }
  ctx.font = font(size * 0.85);
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  ctx.fillText("read as →", left, top - size * 1.25);
  ctx.save();
  ctx.translate(left - size * 1.55, top);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "right";
  ctx.fillText("← meant", 0, 0);
  ctx.restore();
}

/** Bars per digit: the room's share read right beside the test set's (null: no bar). */
export function drawPerDigit(canvas, room, test, size) {
  const fitted = fitCanvas(canvas);
  if (!fitted) return;
  const { ctx, width, height } = fitted;
  ctx.clearRect(0, 0, width, height);
  const box = { left: size * 2.6, right: width - size * 0.3, top: size * 0.6, bottom: height - size * 1.4 };
  const y = (share) => box.bottom - share * (box.bottom - box.top);
  ctx.font = font(size * 0.85);
  ctx.fillStyle = cssVar("--muted");
  ctx.strokeStyle = cssVar("--grid");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const roomy = box.bottom - box.top > size * 3;
  for (const tick of roomy ? [0, 0.5, 1] : [0, 1]) {
    const ty = Math.round(y(tick)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(box.left, ty);
    ctx.lineTo(box.right, ty);
    ctx.stroke();
    ctx.fillText(`${tick * 100}%`, box.left - size * 0.3, ty);
  }
  const group = (box.right - box.left) / DIGITS;
  const bar = Math.max(2, group * 0.34);
  const colours = [cssVar("--room"), cssVar("--accuracy")];
  ctx.font = font(size, 600);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let digit = 0; digit < DIGITS; digit++) {
    const centre = box.left + (digit + 0.5) * group;
    [room[digit], test[digit]].forEach((share, i) => {
      const x = centre + (i === 0 ? -bar - 1 : 1);
      if (share === null || share === undefined) {
        ctx.fillStyle = cssVar("--grid-strong");
        ctx.fillRect(x, box.bottom - 2, bar, 2);
        return;
      }
      ctx.fillStyle = colours[i];
      ctx.fillRect(x, y(share), bar, Math.max(1, box.bottom - y(share)));
    });
    ctx.fillStyle = cssVar("--fg");
    ctx.fillText(String(digit), centre, box.bottom + size * 0.2);
  }
}
