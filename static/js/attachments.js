// Attachments: files uploaded at once (`POST /api/rooms/<slug>/attachments`) from the
// composer's paperclip, a drop on the room, or a paste into the composer. Each upload waits as
// a chip over the composer until the message goes: `send` then carries the finished uploads'
// ids in `attachments`, and the outbox item keeps the attachments themselves, so every retry
// (and the pending copy after a reload) has them (sending.js). files.js shows them in messages.

import { el, icon, newRef, reconcile } from "./dom.js";
import { ATTACHMENTS_PER_MESSAGE, MAX_ATTACHMENT_BYTES } from "./protocol.js";
import { csrfToken } from "./transports.js";
import { humanSize, isImage, localUrl } from "./files.js";

// The server's limits, as it serves them with the page (else the contract's).
export const MAX_BYTES = MAX_ATTACHMENT_BYTES || 10 * 1024 * 1024;
export const MAX_FILES = ATTACHMENTS_PER_MESSAGE || 10;

function carriesFiles(event) {
  return Array.from(event.dataTransfer?.types || []).includes("Files");
}

function parseJson(text) {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** What a refused upload says: the server's `detail` when it gave one. */
function uploadError(status, answer) {
  const detail = typeof answer?.detail === "string" ? answer.detail : "";
  if (status === 0) return "The upload failed: check the connection, then retry.";
  if (status === 429) {
    const wait = Math.ceil(Number(answer?.retry_after) || 0);
    return detail || `Too many uploads: try again${wait ? ` in ${wait} s` : " soon"}.`;
  }
  if (detail) return detail;
  if (status === 413) return "This file is too large.";
  if (status === 415) return "Only images and common documents can be attached.";
  if (status === 403) return "You cannot attach files in this room.";
  return `The upload failed (${status}).`;
}

export class Attachments {
  bindAttachments() {
    const { composer, input, messages } = this.dom;
    if (!composer || !messages) return;
    // Built here, so the templates need no markup: the paperclip and its hidden file picker at
    // the composer's start, the tray of uploads over it, the drop hint over the room.
    const picker = el("input", {
      type: "file",
      multiple: true,
      hidden: true,
      id: "attach-input",
      tabindex: "-1",
      "aria-hidden": "true",
    });
    const clip = el(
      "button",
      {
        type: "button",
        className: "icon-btn attach-btn",
        id: "attach-open",
        title: "Attach files",
        "aria-label": "Attach files",
      },
      icon("paperclip"),
    );
    input.before(clip, picker);
    const tray = el("div", {
      className: "upload-tray",
      id: "upload-tray",
      hidden: true,
      role: "group",
      "aria-label": "Files to send",
    });
    composer.before(tray);
    const area = composer.closest(".timeline") || this.dom.roomView;
    const hint = el(
      "div",
      { className: "drop-hint", hidden: true, "aria-hidden": "true" },
      el("div", { className: "drop-hint-box" }, icon("paperclip"), el("span")),
    );
    area.append(hint);
    Object.assign(this.dom, { attachButton: clip, uploadTray: tray, dropHint: hint });

    clip.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      const files = Array.from(picker.files);
      picker.value = ""; // the same file may be chosen again
      this.attachFiles(files);
    });
    tray.addEventListener("click", (event) => {
      const target = event.target.closest("button[data-action]");
      if (!target) return;
      // Marked handled: the page's click handler (chat.js) leaves it alone.
      event.preventDefault();
      const key = target.closest(".upload")?.dataset.key;
      if (target.dataset.action === "remove-upload") this.removeUpload(key);
      else if (target.dataset.action === "retry-upload") this.retryUpload(key);
    });
    input.addEventListener("paste", (event) => {
      const files = Array.from(event.clipboardData?.files || []);
      if (!files.length) return;
      event.preventDefault();
      this.attachFiles(files);
    });
    this.bindDrop(area);
    // Thumbnails grow as they load: the reader is kept where they were.
    this.bindMessageFiles();
    this.adoptAttachments();
  }

  /** Files dragged over the room: a hint while they hover, an upload when they are dropped. */
  bindDrop(area) {
    let depth = 0; // dragenter and dragleave come in pairs for each element crossed
    const show = (on) => {
      const { dropHint } = this.dom;
      dropHint.hidden = !on;
      dropHint.classList.toggle("refused", !this.canAttach());
      const room = this.current;
      dropHint.querySelector("span").textContent = !this.canAttach()
        ? "Files cannot be attached here."
        : `Drop files to send to ${room.kind === "direct" ? room.name : `#${room.name}`}`;
    };
    area.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth += 1;
      show(true);
    });
    area.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = this.canAttach() ? "copy" : "none";
    });
    area.addEventListener("dragleave", (event) => {
      if (!carriesFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) show(false);
    });
    area.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth = 0;
      show(false);
      this.attachFiles(Array.from(event.dataTransfer.files));
    });
    // A file dropped anywhere else must not replace the page with itself.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (!carriesFiles(event) || event.defaultPrevented) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = "none";
        if (type === "drop") {
          depth = 0;
          show(false);
        }
      });
    }
  }

  /** The server-rendered page: each message's attachments from its markup. */
  adoptAttachments() {
    const room = this.current;
    if (!room) return;
    for (const li of this.dom.messages.querySelectorAll("li[data-seq]")) {
      const message = room.messages.get(Number(li.dataset.seq));
      const links = li.querySelectorAll(".attachments a[data-attachment-id]");
      if (!message || !links.length) continue;
      message.attachments = Array.from(links, (node) => {
        const { attachmentId, name, size, contentType } = node.dataset;
        return {
          id: /^\d+$/.test(attachmentId) ? Number(attachmentId) : attachmentId,
          name,
          size: Number(size),
          content_type: contentType,
          url: node.getAttribute("href"),
        };
      });
    }
  }

  /** Files go to rooms one may post in (a direct conversation not yet started has no room). */
  canAttach() {
    const room = this.current;
    const { composer, input } = this.dom;
    return Boolean(
      this.view === "room" && room?.slug && room.member && !composer.hidden && !input.disabled,
    );
  }

  uploadsOf(room) {
    room.uploads ??= []; // {key, file, name, size, state, progress, error, retryable, attachment}
    return room.uploads;
  }

  // --- uploading ----------------------------------------------------------------------------

  attachFiles(files) {
    const room = this.current;
    if (!files.length) return;
    if (!this.canAttach()) {
      this.toast("Files cannot be attached here.");
      return;
    }
    const uploads = this.uploadsOf(room);
    for (const file of files) {
      const entry = {
        key: newRef(),
        file,
        name: file.name || "file",
        size: file.size,
        state: "uploading",
        progress: 0,
        error: "",
        retryable: false,
        attachment: null,
        request: null,
      };
      const kept = uploads.filter((upload) => upload.state !== "failed").length;
      uploads.push(entry);
      // Checked here too, to spare a hopeless request; the server's answer is the truth.
      if (kept >= MAX_FILES) {
        this.failUpload(entry, `At most ${MAX_FILES} files can go with one message.`);
      } else if (file.size > MAX_BYTES) {
        // The server's own words for it (rooms/api.py).
        this.failUpload(entry, `A file may have at most ${humanSize(MAX_BYTES)}.`);
      } else {
        this.startUpload(room, entry);
      }
    }
    this.renderUploads();
  }

  failUpload(entry, error, retryable = false) {
    Object.assign(entry, { state: "failed", error, retryable, request: null });
    if (!retryable) entry.file = null;
  }

  /** XMLHttpRequest rather than fetch: only it tells how much of the file has gone up. */
  startUpload(room, entry) {
    const request = new XMLHttpRequest();
    Object.assign(entry, { state: "uploading", progress: 0, error: "", request });
    request.open("POST", `/api/rooms/${encodeURIComponent(room.slug)}/attachments`);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      entry.progress = event.loaded / event.total;
      if (room === this.current) this.showProgress(entry);
    });
    request.addEventListener("load", () =>
      this.uploaded(room, entry, request.status, parseJson(request.responseText)),
    );
    request.addEventListener("error", () => this.uploaded(room, entry, 0, null));
    const form = new FormData();
    form.append("file", entry.file, entry.name);
    request.send(form);
  }

  uploaded(room, entry, status, answer) {
    if (!this.uploadsOf(room).includes(entry)) return; // removed meanwhile
    if (status === 201 && answer && answer.id !== undefined) {
      const { id, name, size, content_type: type, url } = answer;
      entry.attachment = { id, name, size, content_type: type, url };
      Object.assign(entry, { state: "done", name, size, file: null, request: null });
    } else {
      // Too many at once, a network error or a server fault: the same file may go later.
      const retryable = status === 0 || status === 429 || status >= 500;
      this.failUpload(entry, uploadError(status, answer), retryable);
    }
    if (room === this.current) this.renderUploads();
  }

  removeUpload(key) {
    const room = this.current;
    if (!room) return;
    const entry = this.uploadsOf(room).find((upload) => upload.key === key);
    entry?.request?.abort();
    // An upload never sent counts against the user's unsent files: the server forgets it.
    if (entry?.attachment) this.discardUpload(entry.attachment);
    room.uploads = this.uploadsOf(room).filter((upload) => upload !== entry);
    this.renderUploads();
    this.dom.input.focus();
  }

  /** `DELETE /api/attachments/<id>`; should it fail, the server drops it after a day anyway. */
  discardUpload(attachment) {
    fetch(`/api/attachments/${encodeURIComponent(attachment.id)}`, {
      method: "DELETE",
      headers: { "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    }).catch(() => {});
  }

  retryUpload(key) {
    const room = this.current;
    const entry = room && this.uploadsOf(room).find((upload) => upload.key === key);
    if (!entry?.file || !this.canAttach()) return;
    this.startUpload(room, entry);
    this.renderUploads();
  }

  // --- sending (sending.js) -----------------------------------------------------------------

  /**
   * What the next message takes along: the finished uploads' attachments, or null while one
   * is still uploading (the message waits until they are all up).
   */
  readyAttachments(room) {
    const uploads = room.uploads || [];
    if (uploads.some((upload) => upload.state === "uploading")) {
      this.toast("A file is still uploading: send once it is done.");
      return null;
    }
    return uploads.filter((upload) => upload.state === "done").map((upload) => upload.attachment);
  }

  /** The message went: the tray empties (refused files included, their errors were seen). */
  clearUploads(room) {
    room.uploads = [];
    this.renderUploads();
  }

  // --- the tray over the composer -----------------------------------------------------------

  renderUploads() {
    const { uploadTray: tray, attachButton, composer, scroller } = this.dom;
    if (!tray) return;
    const room = this.current;
    attachButton.disabled = !this.canAttach();
    const uploads = room && this.view === "room" && !composer.hidden ? room.uploads || [] : [];
    // The tray takes room from the message list: a reader at the bottom stays there.
    const atBottom = this.nearBottom();
    const height = tray.offsetHeight;
    tray.hidden = !uploads.length;
    reconcile(
      tray,
      uploads.map((entry) => this.uploadChip(entry)),
    );
    for (const entry of uploads) if (entry.state === "uploading") this.showProgress(entry);
    if (atBottom && scroller && tray.offsetHeight !== height) {
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  uploadChip(entry) {
    return {
      key: entry.key,
      version: [entry.state, entry.error, entry.retryable].join("|"),
      build: () => {
        const image = entry.state === "done" && isImage(entry.attachment);
        const src = image ? localUrl(entry.attachment.url) : null;
        const status =
          entry.state === "uploading"
            ? [
                el("progress", { max: 100, value: 0, "aria-label": `Uploading ${entry.name}` }),
                el("span", { className: "upload-percent", text: "Uploading…" }),
              ]
            : entry.state === "failed"
              ? el("span", { className: "upload-error", role: "alert", text: entry.error })
              : el("span", { text: humanSize(entry.size) });
        return el(
          "div",
          { className: `upload ${entry.state}`, title: entry.name },
          el(
            "span",
            { className: "upload-preview" },
            src ? el("img", { src, alt: entry.name }) : icon("file"),
          ),
          el(
            "span",
            { className: "upload-info" },
            el("span", { className: "upload-name", text: entry.name }),
            el("span", { className: "upload-status" }, status),
          ),
          entry.retryable
            ? el("button", {
                type: "button",
                className: "link-btn upload-retry",
                text: "Retry",
                dataset: { action: "retry-upload" },
              })
            : null,
          el(
            "button",
            {
              type: "button",
              className: "icon-btn upload-remove",
              title: entry.state === "failed" ? "Dismiss" : "Remove",
              "aria-label": `Remove ${entry.name}`,
              dataset: { action: "remove-upload" },
            },
            icon("close"),
          ),
        );
      },
    };
  }

  /** Progress is patched in place: a chip rebuilt under the pointer would swallow a click. */
  showProgress(entry) {
    const chip = Array.from(this.dom.uploadTray.children).find(
      (node) => node.dataset.key === entry.key,
    );
    if (!chip) return;
    const percent = Math.round(entry.progress * 100);
    const bar = chip.querySelector("progress");
    if (bar) bar.value = percent;
    const label = chip.querySelector(".upload-percent");
    if (label) label.textContent = `Uploading… ${percent}%`;
  }
}
