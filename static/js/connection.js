// One WebSocket per tab to /ws/chat/, kept alive: reconnects with exponential backoff and jitter,
// notices dead connections with a ping, and stops for good on the contract's 4008, 4029 and 4403.

import { newRef } from "./dom.js";
import { CLOSE_ABUSE, CLOSE_REVOKED, CLOSE_SHUTDOWN, CLOSE_TOO_MANY_SOCKETS } from "./protocol.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
// A connection that lived this long was healthy: the next drop starts the backoff afresh.
const STABLE_MS = 10_000;
const PING_IDLE_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * The wait before reconnect attempt `attempt` (0, 1, 2…): "equal jitter", half fixed and half
 * random, so thousands of tabs dropped by one restart do not come back in the same instant.
 */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class Connection {
  /**
   * @param {string} url ws:// or wss:// address of /ws/chat/
   * @param {{onFrame: (frame: object) => void, onStatus: (status: object) => void}} handlers
   *   `onStatus` gets {state, ...}: "connecting"; "open" (after `hello`; `resumed` when it
   *   follows a drop); "waiting" ({retryAt, code}); "closed" ({reason}: "abuse",
   *   "too_many_tabs" or "signed_out").
   */
  constructor(url, { onFrame, onStatus }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.greeted = false;
    this.attempt = 0;
    this.everOpened = false;
    this.retryTimer = null;
    this.stopped = false;
    this.requests = new Map();
    this.lastFrameAt = 0;
    this.pingSentAt = 0;
  }

  start() {
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
    setInterval(() => this.heartbeat(), 5_000);
    this.connect();
  }

  get isOpen() {
    return this.greeted && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.stopped) return;
    this.onStatus({ state: "connecting", attempt: this.attempt });
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.greeted = false;
    ws.addEventListener("message", (event) => this.received(ws, event));
    ws.addEventListener("close", (event) => this.dropped(ws, event.code));
  }

  /** Reconnect now if we are waiting to (the network came back, the tab became visible…). */
  retryNow() {
    if (this.retryTimer !== null && !this.stopped) this.connect();
  }

  /** Send a frame; false when not connected (the caller keeps it for later). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Send a frame with a fresh `ref` and resolve with the reply that echoes it. */
  request(frame, timeout = REQUEST_TIMEOUT_MS) {
    const ref = frame.ref || newRef();
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, ref })) {
        reject(new Error("offline"));
        return;
      }
      const timer = setTimeout(() => {
        this.requests.delete(ref);
        reject(new Error("timeout"));
      }, timeout);
      this.requests.set(ref, { resolve, reject, timer });
    });
  }

  received(ws, event) {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    this.pingSentAt = 0;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "hello") {
      this.greeted = true;
      this.openedAt = Date.now();
      this.onStatus({ state: "open", resumed: this.everOpened });
      this.everOpened = true;
    }
    const pending = frame.ref ? this.requests.get(frame.ref) : undefined;
    if (pending) {
      this.requests.delete(frame.ref);
      clearTimeout(pending.timer);
      if (frame.type === "error") pending.reject(Object.assign(new Error(frame.detail), frame));
      else pending.resolve(frame);
    }
    this.onFrame(frame);
  }

  async dropped(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    const wasGreeted = this.greeted;
    this.greeted = false;
    for (const { reject, timer } of this.requests.values()) {
      clearTimeout(timer);
      reject(new Error("offline"));
    }
    this.requests.clear();
    if (code === CLOSE_ABUSE) return this.stop("abuse");
    if (code === CLOSE_REVOKED) return this.stop("signed_out");
    // This user has as many tabs open as the site allows: retrying would only be refused
    // again. The page offers a button to try once more after closing some.
    if (code === CLOSE_TOO_MANY_SOCKETS) return this.stop("too_many_tabs");
    // A handshake refused before `hello` is an HTTP 403: maybe the session ended. Ask a page:
    // an anonymous visitor is redirected to the sign-in page.
    if (!wasGreeted && (await this.signedOut())) return this.stop("signed_out");
    if (wasGreeted && Date.now() - this.openedAt > STABLE_MS) this.attempt = 0;
    // 4012: this worker is going away; reconnect at once (another worker will answer), with a
    // little jitter so its tabs do not all land in the same millisecond.
    const delay =
      code === CLOSE_SHUTDOWN && this.attempt === 0
        ? Math.round(Math.random() * 300)
        : backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.onStatus({ state: "waiting", code, retryAt: Date.now() + delay });
  }

  async signedOut() {
    try {
      const response = await fetch("/rooms/", {
        method: "HEAD",
        redirect: "manual",
        credentials: "same-origin",
        cache: "no-store",
      });
      return response.type === "opaqueredirect";
    } catch {
      return false; // the network or the server is down: keep trying
    }
  }

  /** Try again after a stop the user can do something about (closing other tabs). */
  restart() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop(reason) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.onStatus({ state: "closed", reason });
  }

  /** A connection that stays silent after a ping is dead (a sleeping laptop, a lost route). */
  heartbeat() {
    if (!this.isOpen) return;
    const now = Date.now();
    if (this.pingSentAt && now - this.pingSentAt > PONG_TIMEOUT_MS) {
      const ws = this.ws;
      ws.close();
      this.dropped(ws, 1006);
    } else if (!this.pingSentAt && now - this.lastFrameAt > PING_IDLE_MS) {
      this.pingSentAt = now;
      this.send({ type: "ping" });
    }
  }
}
