// What the client holds: messages by `seq` per room, and the outbox of messages not yet
// confirmed by the server (kept in sessionStorage, so a reload loses none).



/** A message as the client holds it. */
export function toMessage(raw) {
  return {
    id: raw.id,
    seq: raw.seq,
    author: raw.author,
    body: raw.body || "",
    created: new Date(raw.created_at),
    createdIso: raw.created_at,
    edited: raw.edited_at || null,
    deleted: Boolean(raw.deleted),
    ref: raw.ref || null,
    // Contract §7: the message it answers ({id, seq, author, excerpt}), and who reacted how.
    replyTo: raw.reply_to || null,
    reactions: raw.reactions || {}, // emoji -> usernames (at most 100 listed)
    reactionCounts: raw.reaction_counts || {}, // emoji -> total, where the list was cut
    attachments: raw.attachments || [], // [{id, name, size, content_type, url}] (attachments.js)
    mentions: raw.mentions || [], // usernames it mentions, and "room" for `@room` (mentions.js)
  };
}

/** A room (or a direct conversation not yet started: `draftTo`, no slug). */
/** A room payload (`hello`, `joined`, `room_added`, `room_updated`) as a Room's fields; those
 * a payload leaves out stay undefined, and `room()` keeps what it knew. */
export function roomFields(raw) {
  return {
    name: raw.name,
    kind: raw.kind,
    topic: raw.topic,
    role: raw.role,
    slowMode: raw.slow_mode,
    archived: raw.archived,
  };
}

export class Room {
  constructor({
    slug = null,
    name,
    kind = "public",
    topic = "",
    lastSeq = 0,
    lastRead = 0,
    role = null,
    slowMode = 0,
    archived = false,
  }) {
    Object.assign(this, { slug, name, kind, topic, lastSeq, lastRead });
    // Moderation (contract §6): the viewer's role, the room's rules, the viewer's standing.
    Object.assign(this, { role, slowMode, archived });
    this.roles = new Map(); // username -> "owner" | "moderator"; everyone else is a member
    this.muted = false;
    this.mutedUntil = null; // Date; null while muted: until a moderator unmutes
    this.slowUntil = 0; // slow mode: the composer accepts again at this time (ms)
    this.removed = null; // "removed" (kicked, or banned without saying so) or "banned"
    this.member = false;
    this.draftTo = null;
    this.messages = new Map(); // seq -> message
    this.loaded = false;
    this.lo = null; // lowest seq held
    this.hi = 0; // highest seq held with every seq from `lo` up to it
    this.hasMoreBefore = false;
    this.loadingOlder = false;
    this.filling = false;
    // Held messages may have been edited or deleted while we were offline: fetch them again.
    this.stale = false;
    this.refreshing = false;
    this.members = null; // usernames, once known
    this.presenceKnown = false; // `joined` told us who is online
    this.typing = new Map(); // username -> expiry time
    this.divider = null; // "new messages" goes after this seq
    this.savedScroll = null;
    this.draft = "";
    this.readTimer = null;
  }

  get unread() {
    return this.member ? Math.max(this.lastSeq - this.lastRead, 0) : 0;
  }

  /** Take a page of history (oldest first). */
  add(messages) {
    for (const message of messages) {
      this.messages.set(message.seq, message);
      this.lastSeq = Math.max(this.lastSeq, message.seq);
      if (this.lo === null || message.seq < this.lo) this.lo = message.seq;
    }
    if (this.lo !== null && this.hi < this.lo - 1) this.hi = this.lo - 1;
    while (this.messages.has(this.hi + 1)) this.hi += 1;
  }

  /** True when messages beyond `hi` are known to exist but are not held. */
  get hasGap() {
    return this.loaded && this.lastSeq > this.hi;
  }
}

/** Messages not yet acked, in the order they were written; kept across reloads of the tab. */
export class Outbox {
  constructor(key) {
    this.key = key;
    try {
      this.items = JSON.parse(sessionStorage.getItem(key) || "[]");
    } catch {
      this.items = [];
    }
    for (const item of this.items) item.sentAt = 0;
  }

  save() {
    try {
      sessionStorage.setItem(this.key, JSON.stringify(this.items));
    } catch {
      // Storage full or disabled: the messages still live in this page.
    }
  }

  add(item) {
    this.items.push(item);
    this.save();
  }

  get(ref) {
    return this.items.find((item) => item.ref === ref);
  }

  remove(ref) {
    const before = this.items.length;
    this.items = this.items.filter((item) => item.ref !== ref);
    if (this.items.length !== before) this.save();
    return this.items.length !== before;
  }

  forRoom(room) {
    return this.items.filter((item) =>
      room.slug ? item.room === room.slug || (!item.room && item.to === room.draftTo) : false,
    );
  }

  forDraft(username) {
    return this.items.filter((item) => !item.room && item.to === username);
  }

  /** After a drop every unacked message goes again, with the same ref. */
  unsent() {
    for (const item of this.items) item.sentAt = 0;
  }
}
