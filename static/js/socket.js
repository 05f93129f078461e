// The one module that owns the websocket: connect, reconnect with backoff, dispatch by type.

import { serverUrl } from "./api.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;

export class Socket {
  constructor(path = "/ws") {
    const url = serverUrl(path);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.url = url.href;
    this.handlers = new Map();
    this.stateListeners = [];
    this.delay = FIRST_DELAY_MS;
    this.state = "connecting";
    this.retryAt = null;
    this.timer = null;
  }

  /** Register `handler(frame)` for frames whose `type` is `type`. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  /** `listener(state, retryAt)`; state is "connecting", "open" or "closed". */
  onState(listener) {
    this.stateListeners.push(listener);
    listener(this.state, this.retryAt);
  }

  connect() {
    clearTimeout(this.timer);
    this.setState("connecting", null);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = FIRST_DELAY_MS;
      this.setState("open", null);
    };
    ws.onmessage = (event) => this.dispatch(event.data);
    ws.onclose = () => this.scheduleReconnect(ws);
    ws.onerror = () => ws.close();
  }

  /** Try again at once (the status bar's "reconnect now"). */
  reconnectNow() {
    if (this.state === "closed") this.connect();
  }

  scheduleReconnect(ws) {
    if (ws !== this.ws) return;
    // Jitter spreads a room full of browsers reconnecting to a restarted server.
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.setState("closed", Date.now() + wait);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  dispatch(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      console.warn("backprop-live: ignoring a frame that is not JSON");
      return;
    }
    for (const handler of this.handlers.get(frame.type) || []) handler(frame);
    for (const handler of this.handlers.get("*") || []) handler(frame);
  }

  setState(state, retryAt) {
    this.state = state;
    this.retryAt = retryAt;
    for (const listener of this.stateListeners) listener(state, retryAt);
  }
}
