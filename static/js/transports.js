// The two ways a tab carries the chat's frames, behind one small interface: a WebSocket to
// /ws/chat/, or the HTTP fallback of docs/protocol.md (one event stream down from /chat/stream/,
// POSTs up to /chat/stream/<id>/). Connection (connection.js) chooses between them.
//
// A transport has `kind` ("socket" or "stream"), `isOpen`, `send(text)` and `close()`. It calls
// `onFrame(frame)` with each server frame, parsed, and `onClose(code, {refused})` once when it
// ends by itself (`refused`: the server turned a request of ours away, maybe signed out).
// After `close()` it calls neither.

import { CLOSE_TOO_BIG } from "./protocol.js";

// The contract's cap on one POST; more frames wait for the next.
const MAX_BATCH = 50;
// A POST that meets a network error or a 5xx is sent again this many times before the stream
// counts as dropped, after POST_RETRY_MS, then twice that, and so on.
const POST_RETRIES = 3;
const POST_RETRY_MS = 500;
const RETRY_AFTER_CAP_S = 30;

function parse(text) {
  try {
    const frame = JSON.parse(text);
    return frame && typeof frame === "object" ? frame : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Django's CSRF token: the cookie, current even after a sign-in elsewhere rotated it; else the
 * one in the page (every chat page has a sign-out form). Uploads use it too (attachments.js). */
export function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

export class SocketTransport {
  constructor(url, { onFrame, onClose }) {
    this.kind = "socket";
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.closed = false;
    try {
      this.ws = new WebSocket(url);
    } catch {
      // Refused by the browser itself: a drop like any other, reported after the constructor.
      this.ws = null;
      setTimeout(() => this.end(1006), 0);
      return;
    }
    this.ws.addEventListener("message", (event) => {
      const frame = this.closed ? null : parse(event.data);
      if (frame) this.onFrame(frame);
    });
    this.ws.addEventListener("close", (event) => this.end(event.code));
  }

  get isOpen() {
    return !this.closed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(text) {
    this.ws.send(text);
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }

  end(code) {
    if (this.closed) return;
    this.closed = true;
    this.onClose(code, { refused: false });
  }
}

export class StreamTransport {
  constructor(url, { onFrame, onClose }) {
    this.kind = "stream";
    this.url = url;
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.closed = false;
    this.id = null; // from `hello`
    this.queue = []; // frames (JSON text) not yet POSTed
    this.posting = false; // at most one POST in flight: the server handles them in order
    this.source = new EventSource(url);
    this.source.addEventListener("message", (event) => this.received(event.data));
    // EventSource would reconnect by itself, but a new stream is a new connection that must
    // resume by `seq`: Connection decides, as after a socket's drop. A refused stream (403)
    // lands here too, before any `hello`.
    this.source.addEventListener("error", () => this.end(1006));
  }

  get isOpen() {
    return !this.closed && this.id !== null;
  }

  send(text) {
    this.queue.push(text);
    this.post();
  }

  close() {
    this.closed = true;
    this.queue = [];
    this.source.close();
  }

  end(code, refused = false) {
    if (this.closed) return;
    this.close();
    this.onClose(code, { refused });
  }

  received(data) {
    const frame = this.closed ? null : parse(data);
    if (!frame) return;
    // The stream's last event says how it ended, as a socket's close code would.
    if (frame.type === "close") {
      this.end(frame.code);
      return;
    }
    if (frame.type === "hello" && this.id === null) {
      this.id = frame.stream;
      this.post();
    }
    this.onFrame(frame);
  }

  /** POST the queued frames, one batch at a time, until the queue is empty. */
  async post() {
    if (this.posting || this.closed || this.id === null || !this.queue.length) return;
    this.posting = true;
    const batch = this.queue.splice(0, MAX_BATCH);
    let failures = 0;
    while (!this.closed) {
      let status = 0; // a network error
      let wait = 0;
      try {
        const response = await fetch(`${this.url}${encodeURIComponent(this.id)}/`, {
          method: "POST",
          credentials: "same-origin",
          cache: "no-store",
          // A redirect (to the sign-in page) is a refusal, never a 200 to follow.
          redirect: "manual",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body: `[${batch.join(",")}]`,
        });
        status = response.type === "opaqueredirect" ? 403 : response.status;
        const seconds = Number(response.headers.get("Retry-After"));
        wait = 1000 * (seconds > 0 ? Math.min(RETRY_AFTER_CAP_S, seconds) : 1);
      } catch {
        // fetch rejects only when no answer came; retried below.
      }
      if (this.closed) break;
      if (status >= 200 && status < 300) break;
      if (status === 429) {
        // The stream's input queue is full: the same batch again once it has room.
        await sleep(wait);
        continue;
      }
      if (status === 404) {
        this.end(1006); // the stream ended (its worker went away): reconnect and resume
      } else if (status === 403) {
        this.end(1006, true); // another user's stream, or signed out, or a CSRF failure
      } else if (status === 413 && batch.length > 1) {
        // Too large together: the second half waits for the next POST, order kept.
        this.queue.unshift(...batch.splice(Math.ceil(batch.length / 2)));
        continue;
      } else if (status === 413) {
        this.end(CLOSE_TOO_BIG); // one frame too large: as over a socket (4009)
      } else if (status >= 400 && status < 500) {
        this.end(1006); // 400: never from this client; a fresh stream starts clean
      } else if (failures < POST_RETRIES) {
        await sleep(POST_RETRY_MS * 2 ** failures);
        failures += 1;
        continue;
      } else {
        this.end(1006);
      }
      break;
    }
    this.posting = false;
    this.post();
  }
}
