// What the chat's modules share: timings and sizes of the interface, and small builders of
// its parts (buttons, avatars, room icons).

import { el, icon } from "./dom.js";
import { HISTORY_MAX, TYPING_INTERVAL_MS } from "./protocol.js";

export const PAGE_SIZE = 50;
export const FILL_SIZE = HISTORY_MAX;
// After a reconnect, at most this many pages of held messages are fetched again per room.
export const REFRESH_PAGES = 10;
// Consecutive messages of one author within this gap share one header.
export const GROUP_GAP_MS = 5 * 60_000;
// The server relays one `typing` per TYPING_INTERVAL_MS at most; sending more is wasted.
export const TYPING_SEND_EVERY_MS = Math.max(3_000, TYPING_INTERVAL_MS);
export const TYPING_SHOW_MS = 6_000;
// Unacked sends are sent again (same ref) after this long, and after every reconnect.
export const ACK_TIMEOUT_MS = 8_000;
export const READ_DELAY_MS = 250;
export const BANNER_DELAY_MS = 1_500;
export const BACK_BANNER_MS = 2_500;
export const NEAR_BOTTOM_PX = 80;
export const NEAR_TOP_PX = 300;
// Errors after which a retry cannot succeed: the message waits for the person to decide.
// (`muted` and `slow_mode` too, with a reason of their own: frames.js, moderation.js.)
export const FINAL_ERRORS = new Set([
  "empty",
  "too_long",
  "forbidden",
  "not_found",
  "bad_frame",
  "banned",
]);

export const roomUrl = (slug) => `/rooms/${encodeURIComponent(slug)}/`;
export const isVisible = () => document.visibilityState === "visible";
export const $ = (id) => document.getElementById(id);

export const PAGE_STARTED = Date.now();

export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/chat/`;
}

export function button(text, action, className) {
  return el("button", { type: "button", className, text, dataset: { action } });
}

export function iconButton(name, label, action) {
  return el(
    "button",
    {
      type: "button",
      className: "icon-btn",
      title: label,
      "aria-label": label,
      dataset: { action },
    },
    icon(name),
  );
}

export function letter(name) {
  return (name || "?").charAt(0).toUpperCase();
}

/** The avatar's colour comes from the stylesheet, keyed by the name's first letter. */
export function initial(name) {
  return { initial: (name || "?").charAt(0).toLowerCase() };
}

export function roomIcon(room, online = false) {
  if (room.kind === "direct") {
    return el("span", { className: `presence ${online ? "on" : "off"}`, "aria-hidden": "true" });
  }
  return icon(room.kind === "private" ? "lock" : "hash", "icon room-kind");
}

/**
 * Give class `target` the methods of each class in `parts` (getters included): the chat
 * app is one object whose methods live in modules by concern.
 */
export function mixin(target, ...parts) {
  for (const part of parts) {
    for (const name of Object.getOwnPropertyNames(part.prototype)) {
      if (name === "constructor") continue;
      Object.defineProperty(
        target.prototype,
        name,
        Object.getOwnPropertyDescriptor(part.prototype, name),
      );
    }
  }
}
