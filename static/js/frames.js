// One handler per server frame type (`on_<type>`), each handing the frame to the state and the
// view it concerns; docs/protocol.md lists the frames.

import { roomFields, toMessage } from "./store.js";
import { FINAL_ERRORS, TYPING_SHOW_MS } from "./ui.js";

export class ServerFrames {
  onFrame(frame) {
    const handler = this[`on_${frame.type}`];
    if (handler) handler.call(this, frame);
  }

  /** One of the user's rooms, from `hello` or `room_added`, with its unread count. */
  memberRoom(raw) {
    const room = this.room(raw.slug, roomFields(raw));
    room.member = true;
    room.removed = null;
    room.lastSeq = Math.max(room.lastSeq, raw.last_seq);
    room.lastRead = raw.last_seq - (raw.unread || 0);
    this.countMentions(room, raw.mentions, raw.last_seq); // mentions.js
    return room;
  }

  on_hello(frame) {
    this.me = frame.user;
    const listed = new Set();
    for (const raw of frame.rooms) {
      listed.add(raw.slug);
      this.memberRoom(raw);
    }
    for (const room of this.rooms.values()) {
      if (room.member && !listed.has(room.slug)) room.member = false;
    }
    // Resume: whatever happened while we were away arrives by seq, from `history`; what was
    // held already is fetched again for the open room now, for the others when they open.
    for (const room of this.rooms.values()) {
      if (this.greeted && room.loaded) room.stale = true;
      if (room.hasGap) this.fill(room);
    }
    this.greeted = true;
    const room = this.current;
    if (room && this.view === "room") {
      if (room.slug && !room.loaded) this.loadLatest(room);
      else if (room.stale) this.refresh(room);
      if (room.member) this.requestMembers(room);
      this.markRead(room);
    }
    this.flush();
    this.renderAll();
  }

  on_message(frame) {
    const message = toMessage(frame.message);
    const item = message.author === this.me && message.ref ? this.outbox.get(message.ref) : null;
    const room = this.room(frame.room, this.guess(frame.room, item));
    this.heardMessage(room, message); // mentions.js: counted, notified; before lastSeq moves
    room.member = true;
    room.lastSeq = Math.max(room.lastSeq, message.seq);
    if (message.author === this.me) room.lastRead = Math.max(room.lastRead, message.seq);
    if (item) this.outbox.remove(item.ref);
    room.typing.delete(message.author);
    if (room.loaded) {
      const behind = message.seq > room.hi + 1;
      room.add([message]);
      if (behind) this.fill(room);
    }
    if (room === this.current) {
      this.markRead(room);
      this.renderMessages({ incoming: message.author !== this.me });
      this.renderTyping();
    }
    this.renderSidebar();
    if (item) this.confirmed(item, room);
  }

  on_ack(frame) {
    const item = this.outbox.get(frame.ref);
    if (!item) return;
    const room = this.room(frame.room, this.guess(frame.room, item));
    this.outbox.remove(item.ref);
    room.member = true;
    room.lastSeq = Math.max(room.lastSeq, frame.seq);
    room.lastRead = Math.max(room.lastRead, frame.seq);
    if (room.loaded && !room.messages.has(frame.seq)) {
      const behind = frame.seq > room.hi + 1;
      room.add([
        toMessage({
          ...frame,
          author: this.me,
          body: item.body,
          edited_at: null,
          ref: item.ref,
          reply_to: item.replyTo,
          attachments: item.attachments,
        }),
      ]);
      if (behind) this.fill(room);
    }
    if (room === this.current) this.renderMessages();
    this.renderSidebar();
    this.confirmed(item, room);
  }

  /** What a room first heard of through one's own direct message is: that conversation. */
  guess(slug, item) {
    return item?.to && !this.rooms.has(slug) ? { kind: "direct", name: item.to } : {};
  }

  /** The server has a message of the outbox (by ack, live event or history). */
  confirmed(item, room) {
    this.outbox.remove(item.ref);
    const current = this.current;
    if (current && current.draftTo && item.to === current.draftTo) {
      // The first message of a new direct conversation made its room: show that room.
      this.open(room, { replace: true });
    }
  }

  on_error(frame) {
    const item = frame.ref ? this.outbox.get(frame.ref) : null;
    if (item) {
      if (frame.code === "muted" || frame.code === "slow_mode") {
        // Final too, but the reason is said by the client, with the time it ends.
        this.heldBack(item, frame);
        item.state = "failed";
      } else if (FINAL_ERRORS.has(frame.code)) {
        Object.assign(item, { state: "failed", error: frame.detail });
      } else {
        // rate_limited or internal: the message was not stored; the same ref goes again.
        item.attempts = (item.attempts || 0) + 1;
        item.sentAt = 0;
        item.retryAt = Date.now() + Math.min(8_000, 500 * 2 ** item.attempts);
      }
      this.outbox.save();
      this.renderMessages();
      return;
    }
    const change = frame.ref ? this.changing.get(frame.ref) : null;
    if (change) {
      this.changing.delete(frame.ref);
      const message = this.findMessage(change.id);
      if (message) delete message.pendingChange;
      this.renderMessages();
      this.toast(frame.detail);
      return;
    }
    if (!frame.ref) this.toast(frame.detail);
  }

  on_joined(frame) {
    const raw = frame.room;
    const room = this.room(raw.slug, roomFields(raw));
    if (!room.member) room.lastRead = raw.last_seq;
    room.member = true;
    room.removed = null;
    room.lastSeq = Math.max(room.lastSeq, raw.last_seq);
    room.members = frame.members;
    // Only owners and moderators are listed; everyone else is a member.
    room.roles = new Map(Object.entries(frame.roles || {}));
    if (frame.you) this.standing(room, frame.you);
    // A room of thousands lists its first members by name only.
    room.unlistedMembers = Math.max(0, (frame.member_count ?? 0) - frame.members.length);
    room.presenceKnown = true;
    const online = new Set(frame.online);
    for (const name of frame.members) {
      if (online.has(name)) this.online.add(name);
      else if (name !== this.me) this.online.delete(name);
    }
    if (room.hasGap) this.fill(room);
    this.renderAll();
  }

  on_left(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    room.member = false;
    room.members = room.members?.filter((name) => name !== this.me) || null;
    this.renderAll();
  }

  on_room_added(frame) {
    this.memberRoom(frame.room);
    this.renderSidebar();
    this.renderDirectory();
  }

  on_presence(frame) {
    const room = this.rooms.get(frame.room);
    if (frame.event === "online") this.online.add(frame.user);
    else if (frame.event === "offline") this.online.delete(frame.user);
    else if (room && room.members) {
      const others = room.members.filter((name) => name !== frame.user);
      room.members = frame.event === "joined" ? [...others, frame.user].sort() : others;
    }
    if (frame.event === "offline" && room) room.typing.delete(frame.user);
    this.renderMembers();
    this.renderSidebar();
  }

  on_unread(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    room.lastRead = Math.max(room.lastRead, frame.last_read);
    room.lastSeq = Math.max(room.lastSeq, frame.last_read + frame.count);
    this.countMentions(room, frame.mentions, frame.last_read + frame.count); // mentions.js
    this.renderSidebar();
    if (room === this.current) this.renderMessages();
  }

  on_typing(frame) {
    const room = this.rooms.get(frame.room);
    if (!room || frame.user === this.me) return;
    room.typing.set(frame.user, Date.now() + TYPING_SHOW_MS);
    if (room === this.current) this.renderTyping();
  }

  on_message_edited(frame) {
    this.changed(frame);
  }

  on_message_deleted(frame) {
    this.changed(frame);
  }

  changed(frame) {
    const room = this.rooms.get(frame.room);
    if (!room || !room.messages.has(frame.seq)) return;
    room.messages.set(frame.seq, toMessage(frame.message));
    for (const [ref, change] of this.changing) {
      if (change.id === frame.id) this.changing.delete(ref);
    }
    if (this.editing === frame.id && frame.type === "message_deleted") this.editing = null;
    if (room === this.current) this.renderMessages();
  }
}
