// The presenter's races: one button per preset (GET /api/race/presets, written once on the
// server), each posting its race to /api/race, and the end of a race. Start, pause, step and
// speed stay the run controls' (controls.js): during a race the server applies them to every
// lane.

import { get } from "./api.js";

export class RacePresets {
  /** `row` receives the buttons; `send(method, path, body)` is the controls' request, which
   *  shows a refusal beside them and resolves to whether it went through. */
  constructor(row, { send }) {
    this.row = row;
    this.send = send;
    this.presets = [];
  }

  async load() {
    try {
      this.presets = await get("/api/race/presets");
    } catch {
      this.row.hidden = true; // a server without races: nothing to offer
      return;
    }
    const buttons = this.presets.map((preset) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.racePreset = preset.key;
      button.textContent = preset.title;
      button.title = preset.question;
      button.addEventListener("click", () => this.start(preset));
      return button;
    });
    this.row.append(...buttons);
    this.row.hidden = false;
  }

  /** Replace the live run by this preset's race, paused: Start (or space) sets it off. */
  start(preset) {
    return this.send("POST", "/api/race", preset.race);
  }

  /** End the race: its lanes stay in the run library, the run from before it comes back. */
  end() {
    return this.send("DELETE", "/api/race");
  }
}
