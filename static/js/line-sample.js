// A short stretch of a chart's line, in its colour and dash, for a legend or a label beside a
// chart: the runs page's comparison and the race's lanes name their lines with it.

const SVG = "http://www.w3.org/2000/svg";

/** An inline SVG of a line in `colour` with `dash` (in units of the line width, as palette.js
 *  gives it). */
export function lineSample({ colour, dash }) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 30 10");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG, "line");
  for (const [name, value] of Object.entries({ x1: 1, y1: 5, x2: 29, y2: 5, stroke: colour })) {
    line.setAttribute(name, value);
  }
  line.setAttribute("stroke-width", "3.5");
  if (dash.length) line.setAttribute("stroke-dasharray", dash.map((d) => d * 1.4).join(" "));
  svg.append(line);
  return svg;
}
