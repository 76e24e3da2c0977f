// Sending: messages echoed at once as pending and sent again with the same `ref` until
// confirmed; edits and deletions.

import { newRef } from "./dom.js";
import { MAX_BODY } from "./protocol.js";
import { ACK_TIMEOUT_MS } from "./ui.js";

export class Sending {
  submit() {
    const room = this.current;
    const { input } = this.dom;
    if (!room || this.status.state === "closed" || (!room.member && !room.draftTo)) return;
    const body = input.value.trim();
    // The finished uploads go along (attachments.js); null while one is still uploading.
    const attachments = this.readyAttachments(room);
    if (!attachments || (!body && !attachments.length)) return;
    if (body.length > MAX_BODY) {
      this.toast(`A message may have at most ${MAX_BODY} characters.`);
      return;
    }
    // Muted, archived, removed: the composer says why; what was written stays in it.
    if (this.mutedNow(room) || room.archived || room.removed) return;
    if (this.slowed(room)) {
      if (this.slowWait(room) > 0) return;
      room.slowUntil = Date.now() + room.slowMode * 1000;
    }
    const item = { ref: newRef(), body, createdAt: Date.now(), state: "pending", sentAt: 0 };
    // A reply keeps what it answers in the outbox: every retry, after a reload too, sends it.
    if (room.replyingTo) item.replyTo = room.replyingTo;
    room.replyingTo = null;
    // Attachments too: a retry carries the same ids, and the pending copy shows the files.
    if (attachments.length) item.attachments = attachments;
    this.clearUploads(room);
    if (room.slug) item.room = room.slug;
    else item.to = room.draftTo;
    this.outbox.add(item);
    input.value = "";
    room.draft = "";
    this.composerLimit = "";
    this.lastTypingSent = 0;
    this.flush();
    this.renderMessages({ anchor: "bottom" });
    this.renderComposer();
  }

  /** Send every message that is due: never sent on this connection, or unacked too long. */
  flush() {
    if (!this.conn?.isOpen) return;
    const now = Date.now();
    let sent = false;
    for (const item of this.outbox.items) {
      if (item.state !== "pending") continue;
      if (item.retryAt && now < item.retryAt) continue;
      if (item.sentAt && now - item.sentAt < ACK_TIMEOUT_MS) continue;
      const frame = item.room
        ? { type: "send", room: item.room, body: item.body, ref: item.ref }
        : { type: "direct", to: item.to, body: item.body, ref: item.ref };
      if (item.replyTo) frame.reply_to = item.replyTo.id;
      if (item.attachments?.length) frame.attachments = item.attachments.map((file) => file.id);
      if (!this.conn.send(frame)) break;
      item.sentAt = now;
      sent = true;
    }
    if (sent) this.outbox.save();
  }

  retry(ref) {
    const item = this.outbox.get(ref);
    if (!item) return;
    Object.assign(item, { state: "pending", error: null, sentAt: 0, retryAt: 0, attempts: 0 });
    this.outbox.save();
    this.flush();
    this.renderMessages();
  }

  startEdit(id) {
    this.editing = id;
    this.confirming = null;
    this.renderMessages();
    const editor = this.dom.messages.querySelector(".msg-editor textarea");
    if (editor) {
      editor.focus();
      editor.setSelectionRange(editor.value.length, editor.value.length);
    }
  }

  saveEdit(id) {
    const message = this.findMessage(id);
    const editor = this.dom.messages.querySelector(".msg-editor textarea");
    if (!message || !editor) return;
    const body = editor.value.trim();
    if (!body) {
      this.confirming = id;
      this.editing = null;
      this.renderMessages();
      return;
    }
    if (body !== message.body) {
      const ref = newRef();
      if (!this.conn.send({ type: "edit", id, body, ref })) {
        this.toast("You are offline: the edit can be saved once the connection is back.");
        return;
      }
      this.changing.set(ref, { id });
      message.pendingChange = { body };
    }
    this.editing = null;
    this.renderMessages();
    this.dom.input.focus();
  }

  deleteMessage(id) {
    const message = this.findMessage(id);
    this.confirming = null;
    if (!message) return;
    const ref = newRef();
    if (!this.conn.send({ type: "delete", id, ref })) {
      this.toast("You are offline: the message can be deleted once the connection is back.");
    } else {
      this.changing.set(ref, { id });
      message.pendingChange = { deleted: true };
    }
    this.renderMessages();
  }

  /** Edits and deletes in flight when the connection dropped may or may not have happened. */
  forgetChanges() {
    if (!this.changing.size) return;
    for (const { id } of this.changing.values()) {
      const message = this.findMessage(id);
      if (message) delete message.pendingChange;
    }
    this.changing.clear();
    this.renderMessages();
    this.toast("The connection dropped while a message was being changed: check it once back.");
  }

  findMessage(id) {
    for (const message of this.current?.messages.values() || []) {
      if (message.id === id) return message;
    }
    return null;
  }
}
