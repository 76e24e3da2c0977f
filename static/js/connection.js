// One connection per tab, kept alive: reconnects with exponential backoff and jitter, notices
// dead connections with a ping, and stops for good on the contract's 4008, 4029 and 4403. It
// runs over a WebSocket to /ws/chat/, or over the HTTP fallback (/chat/stream/) where sockets
// do not get through; transports.js holds the two, behind one interface.

import { newRef } from "./dom.js";
import { CLOSE_ABUSE, CLOSE_REVOKED, CLOSE_SHUTDOWN, CLOSE_TOO_MANY_SOCKETS } from "./protocol.js";
import { SocketTransport, StreamTransport } from "./transports.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
// A connection that lived this long was healthy: the next drop starts the backoff afresh.
const STABLE_MS = 10_000;
const PING_IDLE_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
// A socket that has not said `hello` by then is given up; SOCKET_MISSES such sockets in a row
// (or sockets that fail while the site answers over HTTP) move the tab to the stream.
const HELLO_TIMEOUT_MS = 5_000;
const SOCKET_MISSES = 2;
// A stream that has not said `hello` by then is given up and opened again.
const STREAM_HELLO_TIMEOUT_MS = 15_000;
// While on the stream, a socket is tried in the background about this often (±25 %).
const PROBE_EVERY_MS = 180_000;

const HAS_WEBSOCKET = typeof WebSocket !== "undefined";

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
   *   `onStatus` gets {state, transport, ...}: "connecting"; "open" (after `hello`; `resumed`
   *   when it follows a drop; "open" right after "open" is a move from the stream back onto a
   *   socket); "waiting" ({retryAt, code}); "closed" ({reason}: "abuse", "too_many_tabs" or
   *   "signed_out"). `transport` is "socket" or "stream" (the HTTP fallback).
   * @param {string} streamUrl the HTTP fallback's /chat/stream/
   */
  constructor(url, { onFrame, onStatus }, streamUrl = "/chat/stream/") {
    this.url = url;
    this.streamUrl = streamUrl;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.mode = HAS_WEBSOCKET ? "socket" : "stream";
    this.transport = null;
    this.greeted = false;
    this.misses = 0; // sockets in a row that did not get through
    this.helloTimer = null;
    this.probe = null; // a background socket, while on the stream
    this.probeTimer = null;
    this.adopting = null; // {probe, frames, code}: the probe, between its `hello` and its turn
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
    return this.greeted && this.transport !== null && this.transport.isOpen;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.stopped) return;
    this.onStatus({ state: "connecting", attempt: this.attempt, transport: this.mode });
    const transport = this.open(this.mode);
    this.transport = transport;
    this.greeted = false;
    clearTimeout(this.helloTimer);
    this.helloTimer = setTimeout(
      () => {
        if (this.transport !== transport || this.greeted) return;
        transport.close();
        this.dropped(transport, 1006, { timedOut: true });
      },
      this.mode === "socket" ? HELLO_TIMEOUT_MS : STREAM_HELLO_TIMEOUT_MS,
    );
  }

  open(kind) {
    const Transport = kind === "socket" ? SocketTransport : StreamTransport;
    const transport = new Transport(kind === "socket" ? this.url : this.streamUrl, {
      onFrame: (frame) => this.received(transport, frame),
      onClose: (code, details) => this.dropped(transport, code, details),
    });
    return transport;
  }

  /** Reconnect now if we are waiting to (the network came back, the tab became visible…). */
  retryNow() {
    if (this.retryTimer !== null && !this.stopped) this.connect();
  }

  /** Send a frame; false when not connected (the caller keeps it for later). */
  send(frame) {
    if (!this.isOpen) return false;
    this.transport.send(JSON.stringify(frame));
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

  received(transport, frame) {
    if (transport === this.probe) return this.adopt(transport, frame);
    if (this.adopting?.probe === transport) return this.adopting.frames.push(frame);
    if (transport !== this.transport) return;
    this.lastFrameAt = Date.now();
    this.pingSentAt = 0;
    if (frame.type === "hello") {
      clearTimeout(this.helloTimer);
      this.greeted = true;
      this.openedAt = Date.now();
      if (transport.kind === "socket") this.misses = 0;
      else this.scheduleProbe(); // unless one is due already
      this.onStatus({ state: "open", resumed: this.everOpened, transport: transport.kind });
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

  async dropped(transport, code, { refused = false, timedOut = false } = {}) {
    if (this.adopting?.probe === transport) {
      this.adopting.code = code;
      return;
    }
    if (transport === this.probe) {
      this.probe = null;
      this.scheduleProbe();
      return;
    }
    if (transport !== this.transport) return;
    this.transport = null;
    clearTimeout(this.helloTimer);
    const wasGreeted = this.greeted;
    this.greeted = false;
    this.failRequests();
    if (code === CLOSE_ABUSE) return this.stop("abuse");
    if (code === CLOSE_REVOKED) return this.stop("signed_out");
    // This user has as many tabs open as the site allows: retrying would only be refused
    // again. The page offers a button to try once more after closing some.
    if (code === CLOSE_TOO_MANY_SOCKETS) return this.stop("too_many_tabs");
    // A handshake refused before `hello` is an HTTP 403 (so is a stream's POST turned away):
    // maybe the session ended. Ask a page: an anonymous visitor is redirected to sign in.
    if (!wasGreeted || refused) {
      const session = await this.session();
      if (session === "signed_out") return this.stop("signed_out");
      // A socket that failed while the site answers over HTTP (a proxy that strips
      // `Upgrade`), or that never said hello: the stream may get through where it did not.
      // A site that does not answer at all (a restart) says nothing about sockets.
      const missed = timedOut || (code === 1006 && session === "signed_in");
      if (transport.kind === "socket" && !wasGreeted && missed) this.misses += 1;
      // Meanwhile a background socket may have taken over.
      if (this.transport !== null || this.adopting !== null || this.stopped) return;
    }
    if (wasGreeted && Date.now() - this.openedAt > STABLE_MS) this.attempt = 0;
    let delay;
    if (this.mode === "socket" && this.misses >= SOCKET_MISSES) {
      // To the stream at once, with a fresh count: the socket's failures say nothing about it.
      // Sockets are tried again from now on, even if the stream never opens.
      this.mode = "stream";
      this.misses = 0;
      this.attempt = 0;
      delay = Math.round(Math.random() * 300);
      this.scheduleProbe();
    } else if (code === CLOSE_SHUTDOWN && this.attempt === 0) {
      // 4012: this worker is going away; reconnect at once (another worker will answer), with
      // a little jitter so its tabs do not all land in the same millisecond.
      delay = Math.round(Math.random() * 300);
    } else {
      delay = backoffDelay(this.attempt);
    }
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.onStatus({ state: "waiting", code, retryAt: Date.now() + delay, transport: this.mode });
  }

  failRequests() {
    for (const { reject, timer } of this.requests.values()) {
      clearTimeout(timer);
      reject(new Error("offline"));
    }
    this.requests.clear();
  }

  /** "signed_out" (the site sends us to sign in), "signed_in", or "unreachable". */
  async session() {
    try {
      const response = await fetch("/rooms/", {
        method: "HEAD",
        redirect: "manual",
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.type === "opaqueredirect") return "signed_out";
      return response.ok ? "signed_in" : "unreachable";
    } catch {
      return "unreachable"; // the network or the server is down: keep trying
    }
  }

  // --- back from the stream to a socket -----------------------------------------------------

  scheduleProbe() {
    if (!HAS_WEBSOCKET || this.probe !== null || this.probeTimer !== null) return;
    const delay = Math.round(PROBE_EVERY_MS * (0.75 + Math.random() / 2));
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      this.startProbe();
    }, delay);
  }

  /** While on the stream, try a socket in the background; its `hello` moves the tab onto it. */
  startProbe() {
    if (this.stopped || this.mode !== "stream") return;
    const probe = this.open("socket");
    this.probe = probe;
    setTimeout(() => {
      if (this.probe !== probe) return;
      this.probe = null;
      probe.close();
      this.scheduleProbe();
    }, HELLO_TIMEOUT_MS);
  }

  /** The probe said hello: end the stream and take the probe, as a reconnect would. */
  adopt(probe, hello) {
    this.probe = null;
    if (hello.type !== "hello" || this.stopped) {
      probe.close();
      this.scheduleProbe();
      return;
    }
    const stream = this.transport;
    this.transport = null;
    stream?.close();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    clearTimeout(this.helloTimer);
    this.greeted = false;
    this.mode = "socket";
    this.misses = 0;
    this.attempt = 0;
    // Replies to the stream's requests will not come: refuse them now, and let their handlers
    // (microtasks) settle before the `hello`, so that it finds no history request of the
    // stream still marked as under way and asks again what it needs.
    this.failRequests();
    this.adopting = { probe, frames: [hello], code: null };
    setTimeout(() => {
      const { frames, code } = this.adopting;
      this.adopting = null;
      this.transport = probe;
      for (const frame of frames) this.received(probe, frame);
      if (code !== null) this.dropped(probe, code);
    }, 0);
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
    clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.probe?.close();
    this.probe = null;
    this.onStatus({ state: "closed", reason, transport: this.mode });
  }

  /** A connection that stays silent after a ping is dead (a sleeping laptop, a lost route). */
  heartbeat() {
    if (!this.isOpen) return;
    const now = Date.now();
    if (this.pingSentAt && now - this.pingSentAt > PONG_TIMEOUT_MS) {
      const transport = this.transport;
      transport.close();
      this.dropped(transport, 1006);
    } else if (!this.pingSentAt && now - this.lastFrameAt > PING_IDLE_MS) {
      this.pingSentAt = now;
      this.send({ type: "ping" });
    }
  }
}
