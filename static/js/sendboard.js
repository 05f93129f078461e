// "Send to the board": the drawing on the pad goes to the room's gallery with the digit its
// author meant and, if they like, a first name. The phone page and the main page's draw pad
// both use it; the server preprocesses the picture as it does for the live answer.

import { post } from "./api.js";

const NAME_KEY = "backprop-live-name";

export class SendToBoard {
  /** `form`: a [data-send] form holding [data-digits], [data-name], a submit button and
   *  [data-send-message]; `pad`: the DrawPad whose drawing it sends. */
  constructor(form, pad) {
    this.form = form;
    this.pad = pad;
    this.digit = null;
    this.name = form.querySelector("[data-name]");
    this.button = form.querySelector('[type="submit"]');
    this.message = form.querySelector("[data-send-message]");
    this.digits = this.buildDigits(form.querySelector("[data-digits]"));
    this.name.value = localStorage.getItem(NAME_KEY) ?? "";
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  buildDigits(row) {
    return Array.from({ length: 10 }, (_, digit) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "digit-choice";
      button.textContent = String(digit);
      button.setAttribute("aria-pressed", "false");
      button.title = `I drew a ${digit}`;
      button.addEventListener("click", () => this.choose(digit));
      row.append(button);
      return button;
    });
  }

  choose(digit) {
    this.digit = digit;
    this.digits.forEach((button, d) => button.setAttribute("aria-pressed", String(d === digit)));
    this.say("");
  }

  async send() {
    if (this.pad.empty) return this.say("draw a digit on the pad first", "problem");
    if (this.digit === null) return this.say("tap the digit you meant to draw", "problem");
    const author = this.name.value.trim();
    localStorage.setItem(NAME_KEY, author);
    const query = new URLSearchParams({ label: String(this.digit) });
    if (author) query.set("author", author);
    this.button.disabled = true;
    try {
      const answer = await post(`/api/gallery?${query}`, await this.pad.pngBlob());
      const meant = this.digit;
      const verdict = answer.digit === meant ? "right" : `as a ${answer.digit}`;
      this.pad.clear();
      this.choose(null);
      this.say(`On the board! The network reads your ${meant} ${verdict} for now.`, "sent");
    } catch (error) {
      this.say(error.message, "problem");
    } finally {
      this.button.disabled = false;
    }
  }

  say(text, kind = "") {
    this.message.textContent = text;
    this.message.dataset.kind = kind;
  }
}
