// The one module that owns the websocket: connect, reconnect with backoff, dispatch by type.
// It reconnects to the same URL (behind a load balancer: maybe another server process) and
// says where it was (`?run=&next=`), so the server sends the batches it missed, not a hello.

import { presenterToken, serverUrl } from "./api.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;
// The server closes with 1013 ("try again later") when the room is full or this address opens
// sockets too fast: wait longer, and spread a full room's retries over the whole wait.
const TRY_AGAIN_LATER = 1013;
const FULL_FIRST_DELAY_MS = 3000;
const FULL_MAX_DELAY_MS = 60000;

export class Socket {
  constructor(path = "/ws") {
    this.path = path;
    this.handlers = new Map();
    this.stateListeners = [];
    this.delay = FIRST_DELAY_MS;
    this.state = "connecting";
    this.retryAt = null;
    this.timer = null;
    this.position = null; // {run, next}: the run followed and the next batch index awaited
  }

  /** Register `handler(frame)` for frames whose `type` is `type`. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  /** `listener(state, retryAt)`; state is "connecting", "open", "closed" or "full" (the
   *  server turned this page away for now: the room is full). */
  onState(listener) {
    this.stateListeners.push(listener);
    listener(this.state, this.retryAt);
  }

  connect() {
    clearTimeout(this.timer);
    this.setState("connecting", null);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    // Open once the first frame comes: a page turned away is let in, then closed (1013).
    ws.onmessage = (event) => {
      if (this.state !== "open") {
        this.delay = FIRST_DELAY_MS;
        this.setState("open", null);
      }
      this.dispatch(event.data);
    };
    ws.onclose = (event) => this.scheduleReconnect(ws, event.code === TRY_AGAIN_LATER);
    ws.onerror = () => ws.close();
  }

  /** The stream's address; the presenter's page brings its token, so a full room lets it in. */
  url() {
    const url = serverUrl(this.path);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const token = presenterToken();
    if (token) url.searchParams.set("token", token);
    if (this.position) {
      url.searchParams.set("run", this.position.run);
      url.searchParams.set("next", String(this.position.next));
    }
    return url.href;
  }

  /** Try again at once (the status bar's "reconnect now"). */
  reconnectNow() {
    if (this.state === "closed" || this.state === "full") this.connect();
  }

  scheduleReconnect(ws, full) {
    if (ws !== this.ws) return;
    let wait;
    if (full) {
      // Anywhere up to twice the delay: pages turned away together come back apart.
      this.delay = Math.min(Math.max(this.delay * 2, FULL_FIRST_DELAY_MS), FULL_MAX_DELAY_MS);
      wait = this.delay * Math.random() * 2;
    } else {
      // Jitter spreads a room full of browsers reconnecting to a restarted server.
      wait = this.delay * (0.75 + Math.random() * 0.5);
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    }
    this.setState(full ? "full" : "closed", Date.now() + wait);
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
    this.follow(frame);
    for (const handler of this.handlers.get(frame.type) || []) handler(frame);
    for (const handler of this.handlers.get("*") || []) handler(frame);
  }

  /** Where the stream is: a hello starts a run's batches at its history's end. */
  follow(frame) {
    if (frame.type === "hello") {
      this.position = { run: frame.run.id, next: frame.history.next_batch };
    } else if (frame.type === "batches" && this.position && frame.run === this.position.run) {
      this.position.next = frame.first_batch + frame.costs.length;
    }
  }

  setState(state, retryAt) {
    this.state = state;
    this.retryAt = retryAt;
    for (const listener of this.stateListeners) listener(state, retryAt);
  }
}
