// Files in messages: images as thumbnails that open the full image in a new tab, anything else
// as a download link with its name and size (attachments.js uploads them).

import { el, icon } from "./dom.js";
import { NEAR_BOTTOM_PX } from "./ui.js";

/** "512 B", "1.2 MB", "10 MB": binary units, as the limit is counted. */
export function humanSize(bytes) {
  if (!(bytes >= 1024)) return `${Math.max(0, Math.round(bytes) || 0)} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = value < 10 ? value.toFixed(1).replace(/\.0$/, "") : String(Math.round(value));
  return `${shown} ${units[unit]}`;
}

export function isImage(attachment) {
  return String(attachment.content_type || "").startsWith("image/");
}

/** Only a path on this site becomes a link or an image source ("//host" and "/\host" are not). */
export function localUrl(url) {
  return typeof url === "string" && /^\/(?![/\\])/.test(url) ? url : null;
}


export class MessageFiles {
  /** Thumbnails that load grow the list: keep the reader's place (onImagesResized). */
  bindMessageFiles() {
    this.imageHeights = new WeakMap();
    this.imageObserver = new ResizeObserver((entries) => this.onImagesResized(entries));
  }

  /** A message's files: images as thumbnails, anything else as a download link. */
  attachmentList(attachments) {
    return el(
      "div",
      { className: "attachments" },
      attachments.map((attachment) => this.attachmentView(attachment)),
    );
  }

  attachmentView(attachment) {
    const url = localUrl(attachment.url);
    const name = String(attachment.name || "file");
    const size = humanSize(attachment.size);
    if (isImage(attachment) && url) {
      const img = el("img", { src: url, alt: name, loading: "lazy", decoding: "async" });
      // Not yet loaded: it takes no room until it does (onImagesResized keeps the place).
      if (!img.complete) this.imageHeights?.set(img, 0);
      this.imageObserver?.observe(img);
      return el(
        "a",
        {
          className: "attachment-image",
          href: url,
          target: "_blank",
          rel: "noopener noreferrer",
          title: `${name} (${size})`,
        },
        img,
      );
    }
    return el(
      url ? "a" : "span",
      {
        className: "attachment-file",
        href: url,
        download: url ? true : null,
        title: url ? `Download ${name}` : name,
      },
      icon("file"),
      el("span", { className: "attachment-name", text: name }),
      el("span", { className: "attachment-size", text: size }),
    );
  }

  /**
   * Thumbnails loaded, so the list grew: a reader at the bottom stays at the bottom, and one
   * reading further up keeps their place when images above them grow (the scroller does not
   * anchor by itself: `overflow-anchor: none`).
   */
  onImagesResized(entries) {
    const { scroller } = this.dom;
    if (!scroller) return;
    const top = scroller.getBoundingClientRect().top;
    let growth = 0;
    let above = 0;
    for (const entry of entries) {
      const img = entry.target;
      const height = img.getBoundingClientRect().height;
      const before = this.imageHeights.get(img);
      this.imageHeights.set(img, height);
      if (before === undefined || !img.isConnected || !scroller.contains(img)) continue;
      growth += height - before;
      if (img.getBoundingClientRect().bottom <= top) above += height - before;
    }
    if (!growth) return;
    const distance = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
    if (distance - growth < NEAR_BOTTOM_PX) scroller.scrollTop = scroller.scrollHeight;
    else if (above) scroller.scrollTop += above;
  }
}
