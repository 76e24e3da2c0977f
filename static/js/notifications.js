// Desktop notifications (the browser's Notification API): while the tab is hidden, a new message
// that mentions the viewer, or any new message of someone else in a direct conversation, shows a
// notification; a click on it brings the tab back at that room. The browser asks for permission
// only when the person clicks "Enable desktop notifications" in the sidebar, never on its own.

import { el } from "./dom.js";
import { $ } from "./ui.js";

// A notification shows about this many characters of the message.
const EXCERPT_CHARS = 140;
const SVG_NS = "http://www.w3.org/2000/svg";
const BELL = "M10 2.5V4.5M4.5 14h11L14 12V8.5a4 4 0 0 0-8 0V12ZM8.25 16.5a1.75 1.75 0 0 0 3.5 0";

const supported = () => typeof window.Notification === "function";

/** The start of a body on one line, cut with "…". */
export function notificationText(body) {
  const line = (body || "").replace(/\s+/gu, " ").trim();
  const chars = Array.from(line);
  return chars.length > EXCERPT_CHARS ? `${chars.slice(0, EXCERPT_CHARS).join("")}…` : line;
}

/** What a message of files alone says: "sent plan.pdf", "sent 3 files". */
function attachmentsText(attachments) {
  const files = attachments || [];
  if (files.length === 1) return `sent ${files[0].name}`;
  return files.length ? `sent ${files.length} files` : "";
}

function bell() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", BELL);
  svg.append(path);
  return svg;
}

export class Notifications {
  bindNotifications() {
    const sidebar = $("sidebar");
    if (!sidebar || !supported()) return;
    const enable = el(
      "button",
      {
        type: "button",
        className: "notify-enable",
        id: "notify-enable",
        title: "Be notified of mentions and direct messages while this tab is in the background",
      },
      bell(),
      el("span", { text: "Enable desktop notifications" }),
    );
    const bar = el("div", { className: "notify-bar", id: "notify-bar", hidden: true }, enable);
    sidebar.querySelector(".sidebar-foot")?.before(bar);
    this.dom.notifyBar = bar;
    enable.addEventListener("click", () => this.askNotifications());
    // The person may change the permission in the browser's settings: look again on return.
    document.addEventListener("visibilitychange", () => this.renderNotifyControl());
    this.renderNotifyControl();
  }

  /** The control shows only while the browser may still ask ("default"). */
  renderNotifyControl() {
    const bar = this.dom.notifyBar;
    if (bar) bar.hidden = !supported() || Notification.permission !== "default";
  }

  async askNotifications() {
    let answer = "default";
    try {
      // Older browsers answer through a callback only.
      answer = await new Promise((resolve) => {
        const asked = Notification.requestPermission(resolve);
        if (asked && typeof asked.then === "function") {
          asked.then(resolve, () => resolve("default"));
        }
      });
    } catch {
      // No permission prompt here: nothing changes.
    }
    this.renderNotifyControl();
    if (answer === "denied") {
      this.toast("Desktop notifications are blocked: the browser's site settings can allow them.");
    }
  }

  /** A live message (mentions.js `heardMessage`): notify when it matters and no one is looking. */
  notifyMessage(room, message) {
    if (!supported() || Notification.permission !== "granted" || !document.hidden) return;
    if (message.author === this.me || message.deleted) return;
    const direct = room.kind === "direct";
    if (!direct && !this.mentionsMe(message)) return;
    const title = direct
      ? `${message.author} (direct message)`
      : `${message.author} in #${room.name}`;
    let notification;
    try {
      notification = new Notification(title, {
        body: notificationText(message.body) || attachmentsText(message.attachments),
        tag: `chat-room:${room.slug}`, // one per room: a newer one replaces it
        renotify: true,
      });
    } catch {
      return; // where only a service worker may notify (Chrome on Android): nothing to show
    }
    notification.onclick = (event) => {
      event?.preventDefault?.();
      window.focus();
      notification.close();
      const there = this.view === "room" && this.current === room;
      if (room.member && !there) this.open(room, { push: true });
    };
  }
}
