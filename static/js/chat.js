// The chat client: one socket per tab (connection.js), rooms kept in memory by `seq`, messages
// echoed at once as "pending" and retried with the same `ref` until acked. The pages are
// rendered by Django first; this module adopts what is on the page, then keeps it live.
// docs/client.md describes the behaviour; docs/protocol.md the frames.

import { CLOSE_SHUTDOWN, CLOSE_SLOW_READER, CLOSE_TOO_BIG, Connection } from "./connection.js";
import {
  dayKey,
  el,
  formatDay,
  formatFull,
  formatTime,
  icon,
  linkify,
  newRef,
  reconcile,
} from "./dom.js";

const PAGE_SIZE = 50;
const FILL_SIZE = 100;
// After a reconnect, at most this many pages of held messages are fetched again per room.
const REFRESH_PAGES = 10;
const MAX_BODY = 4000;
// Consecutive messages of one author within this gap share one header.
const GROUP_GAP_MS = 5 * 60_000;
const TYPING_SEND_EVERY_MS = 3_000;
const TYPING_SHOW_MS = 6_000;
// Unacked sends are sent again (same ref) after this long, and after every reconnect.
const ACK_TIMEOUT_MS = 8_000;
const READ_DELAY_MS = 250;
const BANNER_DELAY_MS = 1_500;
const BACK_BANNER_MS = 2_500;
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 300;
// Errors after which a retry cannot succeed: the message waits for the person to decide.
const FINAL_ERRORS = new Set(["empty", "too_long", "forbidden", "not_found", "bad_frame"]);

const roomUrl = (slug) => `/rooms/${encodeURIComponent(slug)}/`;
const isVisible = () => document.visibilityState === "visible";
const $ = (id) => document.getElementById(id);

/** A message as the client holds it. */
function toMessage(raw) {
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
  };
}

/** A room (or a direct conversation not yet started: `draftTo`, no slug). */
class Room {
  constructor({ slug = null, name, kind = "public", topic = "", lastSeq = 0, lastRead = 0 }) {
    Object.assign(this, { slug, name, kind, topic, lastSeq, lastRead });
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
class Outbox {
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

class ChatApp {
  constructor(root) {
    this.root = root;
    this.me = root.dataset.user;
    this.view = root.dataset.view;
    this.rooms = new Map();
    this.online = new Set();
    this.current = null;
    this.editing = null; // message id
    this.confirming = null; // message id
    this.changing = new Map(); // ref -> {id, kind}
    this.status = { state: "connecting" };
    this.connectedOnce = false;
    this.greeted = false; // a `hello` came before: the next one is a reconnect
    this.lastTypingSent = 0;
    this.outbox = new Outbox(`chat:outbox:${this.me}`);
    this.dom = {
      roomNav: $("room-nav"),
      dmNav: $("dm-nav"),
      dmEmpty: $("dm-empty"),
      dmForm: $("dm-new"),
      connDot: $("conn-dot"),
      banner: $("conn-banner"),
      toasts: $("toasts"),
      roomView: $("room-view"),
      directory: $("directory-view"),
      title: $("room-title"),
      roomIcon: $("room-icon"),
      topic: $("room-topic"),
      scroller: $("scroller"),
      messages: $("messages"),
      historyStatus: $("history-status"),
      jump: $("jump"),
      typing: $("typing"),
      composer: $("composer"),
      input: $("composer-input"),
      note: $("composer-note"),
      joinBar: $("join-bar"),
      joinName: $("join-name"),
      memberList: $("member-list"),
      memberCount: $("member-count"),
    };
  }

  // --- start-up: adopt the server-rendered page ---------------------------------------------

  start() {
    for (const link of document.querySelectorAll(".room-link[data-room]")) {
      const room = this.room(link.dataset.room, {
        name: link.querySelector(".room-name").textContent,
        kind: link.dataset.kind,
        lastSeq: Number(link.dataset.lastSeq),
        lastRead: Number(link.dataset.lastRead),
      });
      room.member = true;
    }
    const view = this.dom.roomView;
    if (view && view.dataset.room) {
      const room = this.room(view.dataset.room, {
        name: view.dataset.name,
        kind: view.dataset.kind,
        topic: view.dataset.topic,
        lastSeq: Number(view.dataset.lastSeq),
        lastRead: Number(view.dataset.lastRead),
      });
      room.member = view.dataset.member === "1";
      room.add(
        [...this.dom.messages.querySelectorAll("li[data-seq]")].map((li) =>
          toMessage({
            id: Number(li.dataset.id),
            seq: Number(li.dataset.seq),
            author: li.dataset.author,
            body: li.querySelector(".msg-body")?.textContent || "",
            created_at: li.dataset.created,
            edited_at: li.dataset.edited,
            deleted: li.dataset.deleted === "1",
            ref: li.dataset.ref,
          }),
        ),
      );
      room.loaded = true;
      room.hasMoreBefore = view.dataset.hasMore === "1";
      room.members = [...this.dom.memberList.querySelectorAll("li[data-user]")].map(
        (node) => node.dataset.user,
      );
      this.current = room;
      room.divider = room.unread > 0 ? room.lastRead : null;
    }
    this.bind();
    this.conn = new Connection(socketUrl(), {
      onFrame: (frame) => this.onFrame(frame),
      onStatus: (status) => this.onStatus(status),
    });
    this.conn.start();
    this.renderAll({ anchor: this.current?.divider !== null ? "divider" : "bottom" });
    setTimeout(() => {
      this.renderBanner();
      this.renderComposer();
    }, BANNER_DELAY_MS);
    setInterval(() => this.tick(), 1_000);
    history.replaceState({ slug: this.current?.slug || null }, "");
  }

  room(slug, fields = {}) {
    let room = this.rooms.get(slug);
    if (!room) {
      room = new Room({ slug, name: fields.name || slug, ...fields });
      this.rooms.set(slug, room);
    } else {
      for (const [name, value] of Object.entries(fields)) {
        if (value !== undefined && value !== null) room[name] = value;
      }
    }
    return room;
  }

  // --- events from the page -----------------------------------------------------------------

  bind() {
    document.addEventListener("click", (event) => this.onClick(event));
    window.addEventListener("popstate", () => this.onPopState());
    document.addEventListener("visibilitychange", () => this.onVisibility());
    window.addEventListener("focus", () => this.markRead(this.current));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closeDrawers();
    });
    const { input, composer, scroller, dmForm } = this.dom;
    if (composer) {
      composer.addEventListener("submit", (event) => {
        event.preventDefault();
        this.submit();
      });
      input.addEventListener("keydown", (event) => this.onComposerKey(event));
      input.addEventListener("input", () => this.onComposerInput());
    }
    if (scroller) {
      scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
      this.dom.messages.addEventListener("keydown", (event) => this.onEditorKey(event));
    }
    if (dmForm) {
      dmForm.addEventListener("submit", (event) => {
        event.preventDefault();
        const name = dmForm.elements.username.value.trim();
        if (name) {
          dmForm.reset();
          dmForm.hidden = true;
          this.openDirect(name);
        }
      });
    }
    const filter = $("directory-filter");
    if (filter) filter.addEventListener("input", () => this.filterDirectory(filter.value));
  }

  onClick(event) {
    const target = event.target.closest("a, button, textarea");
    if (!target) this.toggleActions(event.target.closest("li.msg.own[data-id]"));
    if (!target || event.defaultPrevented) return;
    const plain = !(event.metaKey || event.ctrlKey || event.shiftKey || event.altKey);
    if (target.matches("a[data-room]") && plain) {
      const room = this.rooms.get(target.dataset.room);
      if (room && room.member && this.dom.roomView) {
        event.preventDefault();
        this.open(room, { push: true });
      }
      return;
    }
    if (target.matches("a[data-nav='directory']") && plain && this.dom.directory) {
      event.preventDefault();
      this.showDirectory({ push: true });
      return;
    }
    const action = target.dataset.action;
    if (!action) return;
    event.preventDefault();
    const li = target.closest("li[data-key]");
    const id = li ? Number(li.dataset.id) : null;
    switch (action) {
      case "toggle-nav":
        this.root.classList.toggle("nav-open");
        break;
      case "toggle-members":
        this.toggleMembers();
        break;
      case "close-drawers":
        this.closeDrawers();
        break;
      case "reconnect":
        this.conn.retryNow();
        break;
      case "restart":
        this.conn.restart();
        break;
      case "reload":
        location.reload();
        break;
      case "jump":
        this.scrollToBottom();
        break;
      case "join":
        this.join(target.dataset.room || this.current?.slug);
        break;
      case "dm":
        this.openDirect(target.dataset.user);
        break;
      case "dm-new":
        this.dom.dmForm.hidden = !this.dom.dmForm.hidden;
        if (!this.dom.dmForm.hidden) this.dom.dmForm.elements.username.focus();
        break;
      case "edit":
        this.startEdit(id);
        break;
      case "save-edit":
        this.saveEdit(id);
        break;
      case "cancel-edit":
        this.editing = null;
        this.renderMessages();
        break;
      case "delete":
        this.confirming = id;
        this.renderMessages();
        break;
      case "cancel-delete":
        this.confirming = null;
        this.renderMessages();
        break;
      case "confirm-delete":
        this.deleteMessage(id);
        break;
      case "retry":
        this.retry(li.dataset.ref);
        break;
      case "discard":
        this.outbox.remove(li.dataset.ref);
        this.renderMessages();
        break;
      case "dismiss":
        target.closest(".toast")?.remove();
        break;
    }
  }

  onPopState() {
    const match = location.pathname.match(/^\/rooms\/([^/]+)\/$/);
    if (match) {
      const room = this.rooms.get(decodeURIComponent(match[1]));
      if (room && room.member && this.dom.roomView) this.open(room);
      else location.reload();
    } else if (/^\/(rooms\/)?$/.test(location.pathname) && this.dom.directory) {
      this.showDirectory();
    } else {
      location.reload();
    }
  }

  onVisibility() {
    const room = this.current;
    if (!isVisible() || !room || this.view !== "room") return;
    // Coming back to a room with news: show where reading stopped.
    if (room.unread > 0) {
      room.divider = room.lastRead;
      this.renderMessages();
    }
    this.markRead(room);
  }

  onScroll() {
    const { scroller, jump } = this.dom;
    if (this.nearBottom()) jump.hidden = true;
    if (scroller.scrollTop < NEAR_TOP_PX) this.loadOlder(this.current);
  }

  onComposerKey(event) {
    const { input } = this.dom;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "ArrowUp" && input.value === "" && this.current) {
      const mine = [...this.current.messages.values()]
        .filter((m) => m.author === this.me && !m.deleted)
        .sort((a, b) => b.seq - a.seq)[0];
      if (mine) {
        event.preventDefault();
        this.startEdit(mine.id);
      }
    }
  }

  onComposerInput() {
    const room = this.current;
    const { input, note } = this.dom;
    if (room) room.draft = input.value;
    const left = MAX_BODY - input.value.length;
    this.composerLimit = left < 200 ? `${left} characters left` : "";
    if (this.composerLimit || note.dataset.kind === "limit") this.renderComposer();
    const now = Date.now();
    if (
      room?.slug &&
      room.member &&
      input.value.trim() &&
      now - this.lastTypingSent > TYPING_SEND_EVERY_MS
    ) {
      if (this.conn.send({ type: "typing", room: room.slug })) this.lastTypingSent = now;
    }
  }

  onEditorKey(event) {
    const editor = event.target.closest(".msg-editor textarea");
    if (!editor) return;
    const id = Number(editor.closest("li").dataset.id);
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.saveEdit(id);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.editing = null;
      this.renderMessages();
      this.dom.input.focus();
    }
  }

  // --- frames from the server ---------------------------------------------------------------

  onFrame(frame) {
    const handler = this[`on_${frame.type}`];
    if (handler) handler.call(this, frame);
  }

  on_hello(frame) {
    this.me = frame.user;
    const listed = new Set();
    for (const raw of frame.rooms) {
      listed.add(raw.slug);
      const room = this.room(raw.slug, {
        name: raw.name,
        kind: raw.kind,
        topic: raw.topic,
      });
      room.member = true;
      room.lastSeq = Math.max(room.lastSeq, raw.last_seq);
      room.lastRead = raw.last_seq - (raw.unread || 0);
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
        toMessage({ ...frame, author: this.me, body: item.body, edited_at: null, ref: item.ref }),
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
      if (FINAL_ERRORS.has(frame.code)) {
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
    const room = this.room(raw.slug, { name: raw.name, kind: raw.kind, topic: raw.topic });
    if (!room.member) room.lastRead = raw.last_seq;
    room.member = true;
    room.lastSeq = Math.max(room.lastSeq, raw.last_seq);
    room.members = frame.members;
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
    const raw = frame.room;
    const room = this.room(raw.slug, { name: raw.name, kind: raw.kind, topic: raw.topic });
    room.member = true;
    room.lastSeq = Math.max(room.lastSeq, raw.last_seq);
    room.lastRead = raw.last_seq - (raw.unread || 0);
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

  // --- connection status --------------------------------------------------------------------

  onStatus(status) {
    const previous = this.status;
    this.status = status;
    if (status.state === "open") this.connectedOnce = true;
    if (status.state === "waiting") {
      this.outbox.unsent();
      // Who is online is unknown while we are not: the next `joined` tells again.
      for (const room of this.rooms.values()) room.presenceKnown = false;
      this.online.clear();
      this.renderMembers();
      this.renderSidebar();
      this.forgetChanges();
    }
    if (status.state === "open" && status.resumed) {
      this.backUntil = Date.now() + BACK_BANNER_MS;
    }
    if (previous.state !== status.state) {
      this.renderBanner();
      this.renderComposer();
    }
  }

  /** Once a second: retry overdue sends, expire typing, count down the banner. */
  tick() {
    this.flush();
    const room = this.current;
    if (room && room.typing.size) this.renderTyping();
    if (this.status.state === "waiting" || (this.backUntil && Date.now() > this.backUntil)) {
      if (this.backUntil && Date.now() > this.backUntil) this.backUntil = 0;
      this.renderBanner();
    }
  }

  // --- sending ------------------------------------------------------------------------------

  submit() {
    const room = this.current;
    const { input } = this.dom;
    if (!room || this.status.state === "closed" || (!room.member && !room.draftTo)) return;
    const body = input.value.trim();
    if (!body) return;
    if (body.length > MAX_BODY) {
      this.toast(`A message may have at most ${MAX_BODY} characters.`);
      return;
    }
    const item = { ref: newRef(), body, createdAt: Date.now(), state: "pending", sentAt: 0 };
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

  // --- rooms and navigation -----------------------------------------------------------------

  async open(room, { push = false, replace = false } = {}) {
    if (!this.dom.roomView) {
      location.assign(roomUrl(room.slug));
      return;
    }
    this.leaveCurrent();
    this.current = room;
    this.view = "room";
    if (push) history.pushState({ slug: room.slug }, "", roomUrl(room.slug));
    if (replace) history.replaceState({ slug: room.slug }, "", roomUrl(room.slug));
    room.divider = room.unread > 0 ? room.lastRead : null;
    this.dom.input.value = room.draft;
    this.closeDrawers();
    this.renderAll({ anchor: "none" });
    if (!room.loaded) await this.loadLatest(room);
    else if (room.hasGap) await this.fill(room);
    if (room.stale) await this.refresh(room);
    if (this.current !== room) return;
    const anchor =
      room.divider !== null ? "divider" : room.savedScroll === null ? "bottom" : "saved";
    this.renderMessages({ anchor });
    this.markRead(room);
    if (room.member) this.requestMembers(room);
    if (matchMedia("(hover: hover)").matches) this.dom.input.focus();
  }

  /** Remember where the reader was, to come back there. */
  leaveCurrent() {
    const room = this.current;
    if (!room || this.view !== "room") return;
    room.draft = this.dom.input.value;
    room.savedScroll = this.nearBottom() ? null : this.dom.scroller.scrollTop;
    this.editing = null;
    this.confirming = null;
  }

  showDirectory({ push = false } = {}) {
    this.leaveCurrent();
    this.current = null;
    this.view = "directory";
    if (push) history.pushState({ slug: null }, "", "/rooms/");
    this.closeDrawers();
    this.renderAll();
  }

  openDirect(username) {
    if (!username || username === this.me) return;
    for (const room of this.rooms.values()) {
      if (room.kind === "direct" && room.member && room.name === username) {
        this.open(room, { push: true });
        return;
      }
    }
    if (!this.dom.roomView) {
      location.assign(`/rooms/?dm=${encodeURIComponent(username)}`);
      return;
    }
    // Not started yet: the first message (a `direct` frame) makes the room.
    this.leaveCurrent();
    const draft = new Room({ name: username, kind: "direct" });
    draft.draftTo = username;
    draft.member = true;
    draft.loaded = true;
    draft.members = [this.me, username].sort();
    this.current = draft;
    this.view = "room";
    this.closeDrawers();
    this.renderAll({ anchor: "bottom" });
    this.dom.input.focus();
  }

  async join(slug) {
    if (!slug) return;
    try {
      await this.conn.request({ type: "join", room: slug });
    } catch (error) {
      if (error.message === "offline") location.assign(roomUrl(slug));
      else this.toast(error.message);
      return;
    }
    const room = this.rooms.get(slug);
    if (room === this.current) {
      this.markRead(room);
      this.renderAll();
    } else if (room) {
      this.open(room, { push: true });
    }
  }

  requestMembers(room) {
    this.conn.request({ type: "join", room: room.slug }).catch(() => {});
  }

  async loadLatest(room) {
    try {
      const page = await this.conn.request({ type: "history", room: room.slug, limit: PAGE_SIZE });
      room.add(page.messages.map(toMessage));
      room.loaded = true;
      room.hasMoreBefore = page.has_more;
      // Show the first unread message if it lies a page or two back.
      for (let i = 0; i < 2 && room.divider !== null && room.lo > room.divider + 1; i++) {
        if (!room.hasMoreBefore) break;
        await this.loadOlder(room, { render: false });
      }
    } catch {
      // Offline: the next `hello` loads it.
    }
  }

  /** Load the page before the oldest message held (scrolling up). */
  async loadOlder(room, { render = true } = {}) {
    if (!room || !room.slug || !room.loaded || !room.hasMoreBefore || room.loadingOlder) return;
    if (!this.conn.isOpen) return; // the next `hello` renders, and asks again if needed
    room.loadingOlder = true;
    if (render && room === this.current) this.renderHistoryStatus();
    let loaded = false;
    try {
      const page = await this.conn.request({
        type: "history",
        room: room.slug,
        before: room.lo,
        limit: PAGE_SIZE,
      });
      room.add(page.messages.map(toMessage));
      room.hasMoreBefore = page.has_more;
      loaded = true;
    } catch {
      // Offline or timed out: scrolling up again retries.
    } finally {
      room.loadingOlder = false;
    }
    if (render && room === this.current) {
      if (loaded) this.renderMessages({ anchor: "prepend" });
      else this.renderHistoryStatus();
    }
  }

  /** Fetch the held messages again (edits and deletions made while we were offline). */
  async refresh(room) {
    if (!room.loaded || room.refreshing || !room.slug) return;
    room.refreshing = true;
    room.stale = false;
    try {
      let after = room.lo - 1;
      for (let pages = 0; after < room.hi && pages < REFRESH_PAGES; pages++) {
        const page = await this.conn.request({
          type: "history",
          room: room.slug,
          after,
          limit: FILL_SIZE,
        });
        const messages = page.messages.map(toMessage);
        room.add(messages);
        if (!page.has_more || !messages.length) break;
        after = messages[messages.length - 1].seq;
      }
    } catch {
      room.stale = true; // offline again: the next `hello` retries
    } finally {
      room.refreshing = false;
    }
    if (room === this.current) this.renderMessages();
  }

  /** Ask `history` after the last contiguous seq until the gap is closed. */
  async fill(room) {
    if (room.filling || !room.slug) return;
    room.filling = true;
    try {
      for (let pages = 0; room.hasGap && pages < 20; pages++) {
        const page = await this.conn.request({
          type: "history",
          room: room.slug,
          after: room.hi,
          limit: FILL_SIZE,
        });
        const messages = page.messages.map(toMessage);
        const mine = messages.map((m) => m.author === this.me && this.outbox.get(m.ref));
        for (const item of mine) if (item) this.outbox.remove(item.ref);
        room.add(messages);
        for (const item of mine) if (item) this.confirmed(item, room);
        if (!page.has_more || !messages.length) {
          // Whatever lastSeq promised beyond this does not exist (yet): stop asking.
          room.lastSeq = Math.max(room.hi, ...messages.map((m) => m.seq), room.lastRead);
          break;
        }
      }
    } catch {
      // Offline: the next `hello` resumes.
    } finally {
      room.filling = false;
    }
    if (room === this.current) {
      this.markRead(room);
      this.renderMessages();
    }
    this.renderSidebar();
  }

  /** The open room is read while it is on screen. */
  markRead(room) {
    if (!room || !room.slug || !room.member || room !== this.current) return;
    if (this.view !== "room" || !isVisible() || room.lastRead >= room.lastSeq) return;
    room.lastRead = room.lastSeq;
    this.renderSidebar();
    clearTimeout(room.readTimer);
    room.readTimer = setTimeout(() => {
      this.conn.send({ type: "read", room: room.slug, seq: room.lastRead });
    }, READ_DELAY_MS);
  }

  // --- rendering ----------------------------------------------------------------------------

  renderAll({ anchor = "auto" } = {}) {
    this.renderSidebar();
    this.renderDirectory();
    this.renderRoom();
    this.renderMessages({ anchor });
    this.renderMembers();
    this.renderTyping();
    this.renderComposer();
    this.renderBanner();
  }

  renderSidebar() {
    const { roomNav, dmNav, dmEmpty } = this.dom;
    if (roomNav) {
      const byName = (a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" });
      const mine = [...this.rooms.values()].filter((room) => room.member && room.slug);
      const rooms = mine.filter((room) => room.kind !== "direct").sort(byName);
      const directs = mine.filter((room) => room.kind === "direct").sort(byName);
      reconcile(
        roomNav,
        rooms.map((room) => this.navRow(room)),
      );
      reconcile(
        dmNav,
        directs.map((room) => this.navRow(room)),
      );
      dmEmpty.hidden = directs.length > 0;
    }
    for (const link of document.querySelectorAll(".nav-link[data-nav=directory]")) {
      if (this.view !== "page") link.classList.toggle("active", this.view === "directory");
    }
    this.updateTitle();
  }

  navRow(room) {
    const active = this.view === "room" && this.current === room;
    const online = room.kind === "direct" && this.online.has(room.name);
    const unread = room.unread;
    return {
      key: room.slug,
      version: [room.name, room.kind, unread, active, online].join("|"),
      build: () =>
        el(
          "li",
          {},
          el(
            "a",
            {
              className: `room-link${unread ? " unread" : ""}${active ? " active" : ""}`,
              href: roomUrl(room.slug),
              "aria-current": active ? "page" : null,
              dataset: { room: room.slug, kind: room.kind },
            },
            roomIcon(room, online),
            el("span", { className: "room-name", text: room.name }),
            el("span", {
              className: "badge",
              text: unread > 99 ? "99+" : String(unread),
              hidden: !unread,
              "aria-label": `${unread} unread`,
            }),
          ),
        ),
    };
  }

  updateTitle() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.unread;
    const place =
      this.view === "room" && this.current
        ? this.current.kind === "direct"
          ? this.current.name
          : `#${this.current.name}`
        : this.view === "directory"
          ? "Browse rooms"
          : document.title.replace(/^\(\d+\) /, "").replace(/ · Chat$/, "");
    document.title = `${total ? `(${total}) ` : ""}${place} · Chat`;
  }

  renderDirectory() {
    const { directory, roomView } = this.dom;
    if (directory) directory.hidden = this.view !== "directory";
    if (roomView) roomView.hidden = this.view !== "room";
    if (!directory) return;
    for (const li of directory.querySelectorAll("li[data-room]")) {
      const room = this.rooms.get(li.dataset.room);
      li.classList.toggle("joined", Boolean(room && room.member));
    }
  }

  renderRoom() {
    const room = this.current;
    const { roomView, title, roomIcon: iconSlot, topic } = this.dom;
    if (!roomView || !room) return;
    roomView.dataset.room = room.slug || "";
    roomView.dataset.kind = room.kind;
    title.textContent = room.name;
    iconSlot.replaceChildren(roomIcon(room, this.online.has(room.name)));
    topic.textContent =
      room.topic ||
      (room.kind === "direct" ? "Direct conversation: only the two of you see it." : "");
    topic.hidden = !topic.textContent;
  }

  renderMessages({ anchor = "auto", incoming = false } = {}) {
    const room = this.current;
    const { scroller, messages, jump } = this.dom;
    if (!room || !messages || this.view !== "room") return;
    const wasAtBottom = this.nearBottom();
    const before = { height: scroller.scrollHeight, top: scroller.scrollTop };
    reconcile(messages, this.rows(room));
    this.renderHistoryStatus();
    if (anchor === "prepend") {
      scroller.scrollTop = before.top + (scroller.scrollHeight - before.height);
    } else if (anchor === "bottom" || (anchor === "auto" && wasAtBottom)) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (anchor === "divider") {
      const divider = messages.querySelector(".new-divider");
      if (divider) scroller.scrollTop = Math.max(0, divider.offsetTop - scroller.clientHeight / 3);
      else scroller.scrollTop = scroller.scrollHeight;
    } else if (anchor === "saved") {
      scroller.scrollTop = room.savedScroll;
    } else if (anchor === "auto" && incoming) {
      jump.hidden = false;
    }
    if (anchor !== "auto") jump.hidden = true;
    // A short room cannot be scrolled up, and a view anchored at the very top (the first
    // unread message opens the page) cannot either: load the page before, as scrolling would.
    const stuckAtTop = scroller.scrollTop < NEAR_TOP_PX && anchor !== "prepend";
    if (
      room.hasMoreBefore &&
      (stuckAtTop || scroller.scrollHeight <= scroller.clientHeight + NEAR_TOP_PX)
    ) {
      this.loadOlder(room);
    }
  }

  renderHistoryStatus() {
    const room = this.current;
    const { historyStatus } = this.dom;
    if (!room || !historyStatus) return;
    let content;
    if (!room.loaded) content = el("p", { className: "muted", text: "Loading messages…" });
    else if (room.loadingOlder)
      content = el("p", { className: "muted", text: "Loading older messages…" });
    else if (room.hasMoreBefore) content = el("p", { className: "muted", text: "" });
    else content = this.roomIntro(room);
    const key = `${room.slug}|${room.loaded}|${room.loadingOlder}|${room.hasMoreBefore}`;
    if (historyStatus.dataset.key !== key) {
      historyStatus.dataset.key = key;
      historyStatus.replaceChildren(content);
    }
  }

  roomIntro(room) {
    if (room.kind === "direct") {
      return el(
        "div",
        { className: "intro" },
        el("span", {
          className: "avatar big",
          dataset: initial(room.name),
          text: letter(room.name),
        }),
        el("h2", { text: room.name }),
        el("p", {
          text:
            `This is the beginning of your direct conversation with ${room.name}. ` +
            "Only the two of you can see it.",
        }),
      );
    }
    return el(
      "div",
      { className: "intro" },
      el("span", { className: "intro-icon" }, roomIcon(room)),
      el("h2", { text: `Welcome to #${room.name}` }),
      el("p", { text: `This is the very beginning of the #${room.name} room.` }),
    );
  }

  rows(room) {
    const rows = [];
    const now = new Date();
    let previous = null;
    let previousDay = null;
    const seqs = [...room.messages.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const message = room.messages.get(seq);
      const day = dayKey(message.created);
      let starts = false;
      if (day !== previousDay) {
        const label = formatDay(message.created, now);
        rows.push({
          key: `d:${day}`,
          version: label,
          build: () =>
            el("li", { className: "day-sep", role: "separator" }, el("span", { text: label })),
        });
        previousDay = day;
        starts = true;
      }
      if (
        room.divider !== null &&
        seq > room.divider &&
        (previous === null || previous.seq <= room.divider) &&
        message.author !== this.me
      ) {
        rows.push({
          key: "new",
          version: "new",
          build: () =>
            el("li", { className: "new-divider", role: "separator" }, el("span", { text: "New" })),
        });
        starts = true;
      }
      starts ||=
        !previous ||
        previous.author !== message.author ||
        previous.deleted ||
        message.created - previous.created > GROUP_GAP_MS;
      rows.push(this.messageRow(message, starts));
      previous = message;
    }
    for (const item of room.slug ? this.outbox.forRoom(room) : this.outbox.forDraft(room.draftTo)) {
      const starts = !previous || previous.author !== this.me || previous.deleted;
      rows.push(this.pendingRow(item, starts));
      previous = { author: this.me, deleted: false };
    }
    return rows;
  }

  messageRow(message, starts) {
    const own = message.author === this.me;
    const editing = own && this.editing === message.id && !message.deleted;
    const confirming = this.confirming === message.id && !message.deleted;
    const change = message.pendingChange;
    const time = formatTime(message.created);
    const version = [
      message.id,
      message.body,
      message.edited,
      message.deleted,
      starts,
      editing,
      confirming,
      change ? JSON.stringify(change) : "",
      time,
    ].join("\u0000");
    return {
      key: `m:${message.seq}`,
      version,
      build: () => {
        const classes = ["msg"];
        if (starts) classes.push("group-start");
        if (own) classes.push("own");
        if (message.deleted) classes.push("deleted");
        if (change) classes.push("changing");
        const li = el("li", {
          className: classes.join(" "),
          dataset: { seq: message.seq, id: message.id, author: message.author },
        });
        const main = el("div", { className: "msg-main" });
        li.append(this.gutter(message.author, message.created, starts), main);
        if (starts) main.append(this.head(message.author, message.created, message.createdIso));
        if (message.deleted) {
          main.append(el("div", { className: "msg-body deleted-note", text: "Message deleted" }));
        } else if (editing) {
          const editor = el("textarea", {
            rows: 2,
            maxlength: MAX_BODY,
            "aria-label": "Edit message",
          });
          editor.value = message.body;
          main.append(
            el(
              "div",
              { className: "msg-editor" },
              editor,
              el(
                "div",
                { className: "msg-editor-actions" },
                el("span", { className: "hint", text: "Enter to save · Esc to cancel" }),
                button("Cancel", "cancel-edit", "btn small"),
                button("Save", "save-edit", "btn small primary"),
              ),
            ),
          );
        } else {
          const body = el("div", { className: "msg-body" }, linkify(change?.body ?? message.body));
          if (message.edited) {
            body.append(
              " ",
              el("span", {
                className: "msg-edited",
                text: "(edited)",
                title: formatFull(new Date(message.edited)),
              }),
            );
          }
          main.append(body);
          if (change) {
            main.append(
              el("div", {
                className: "msg-status",
                text: change.deleted ? "Deleting…" : "Saving…",
              }),
            );
          }
        }
        if (confirming) {
          main.append(
            el(
              "div",
              { className: "msg-confirm", role: "alertdialog", "aria-label": "Delete message?" },
              el("span", { text: "Delete this message for everyone?" }),
              button("Cancel", "cancel-delete", "btn small"),
              button("Delete", "confirm-delete", "btn small danger"),
            ),
          );
        }
        if (own && !message.deleted && !editing && !confirming && !change) {
          li.append(
            el(
              "div",
              { className: "msg-actions" },
              iconButton("edit", "Edit message", "edit"),
              iconButton("trash", "Delete message", "delete"),
            ),
          );
        }
        return li;
      },
    };
  }

  pendingRow(item, starts) {
    const failed = item.state === "failed";
    return {
      key: `p:${item.ref}`,
      version: [item.state, item.error, starts].join("|"),
      build: () => {
        const created = new Date(item.createdAt);
        const li = el("li", {
          className: `msg own ${failed ? "failed" : "pending"}${starts ? " group-start" : ""}`,
          dataset: { ref: item.ref, author: this.me },
          "aria-busy": failed ? null : "true",
        });
        const main = el("div", { className: "msg-main" });
        if (starts) main.append(this.head(this.me, created, created.toISOString()));
        main.append(el("div", { className: "msg-body" }, linkify(item.body)));
        main.append(
          failed
            ? el(
                "div",
                { className: "msg-status error" },
                el("span", { text: `Not sent: ${item.error}` }),
                button("Retry", "retry", "link-btn"),
                button("Discard", "discard", "link-btn"),
              )
            : el("div", { className: "msg-status", text: "Sending…" }),
        );
        li.append(this.gutter(this.me, created, starts), main);
        return li;
      },
    };
  }

  gutter(author, created, starts) {
    return el(
      "div",
      { className: "msg-gutter" },
      starts
        ? el("span", { className: "avatar", dataset: initial(author), text: letter(author) })
        : el("time", { className: "msg-hover-time", text: formatTime(created) }),
    );
  }

  head(author, created, iso) {
    const name = el("button", {
      type: "button",
      className: "msg-author",
      text: author,
      title: author === this.me ? "You" : `Message ${author}`,
      dataset: author === this.me ? {} : { action: "dm", user: author },
    });
    return el(
      "div",
      { className: "msg-head" },
      name,
      el("time", {
        className: "msg-time",
        datetime: iso,
        title: formatFull(created),
        text: formatTime(created),
      }),
    );
  }

  renderMembers() {
    const room = this.current;
    const { memberList, memberCount } = this.dom;
    if (!memberList || !room || this.view !== "room") return;
    const names = room.members || [];
    const online = names.filter((name) => name === this.me || this.online.has(name));
    const offline = names.filter((name) => !online.includes(name));
    memberCount.textContent = String(names.length + (room.unlistedMembers || 0));
    const rows = [];
    // Until `joined` says who is online, list everyone without guessing.
    const groups = room.presenceKnown
      ? [
          ["Online", online, true],
          ["Offline", offline, false],
        ]
      : [["Members", names, null]];
    for (const [label, group, isOnline] of groups) {
      if (!group.length) continue;
      rows.push({
        key: `h:${label}`,
        version: `${group.length}`,
        build: () => el("li", { className: "member-group", text: `${label} — ${group.length}` }),
      });
      for (const name of group) rows.push(this.memberRow(name, isOnline));
    }
    reconcile(memberList, rows);
  }

  memberRow(name, isOnline) {
    const me = name === this.me;
    return {
      key: `u:${name}`,
      version: `${isOnline}|${me}`,
      build: () =>
        el(
          "li",
          {
            dataset: { user: name },
            className: isOnline === null ? "" : isOnline ? "online" : "offline",
          },
          el(
            "button",
            {
              type: "button",
              className: "member",
              dataset: me ? {} : { action: "dm", user: name },
              title: me ? "You" : `Send ${name} a direct message`,
              disabled: me,
            },
            el(
              "span",
              { className: "avatar small", dataset: initial(name), text: letter(name) },
              isOnline === null
                ? null
                : el("span", { className: `presence ${isOnline ? "on" : "off"}` }),
            ),
            el("span", { className: "member-name", text: name }),
            me ? el("span", { className: "member-you", text: "you" }) : null,
            me ? null : el("span", { className: "member-dm", text: "Message" }),
          ),
        ),
    };
  }

  renderTyping() {
    const room = this.current;
    const { typing } = this.dom;
    if (!typing || !room) return;
    const now = Date.now();
    for (const [name, until] of room.typing) if (until < now) room.typing.delete(name);
    const names = [...room.typing.keys()].filter((name) => name !== this.me);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    if (typing.dataset.text !== text) {
      typing.dataset.text = text;
      typing.replaceChildren(
        text ? el("span", { className: "typing-dots", "aria-hidden": "true" }) : "",
        text,
      );
    }
  }

  renderComposer() {
    const room = this.current;
    const { composer, input, note, joinBar, joinName } = this.dom;
    if (!composer || !room) return;
    const canWrite = room.member || Boolean(room.draftTo);
    composer.hidden = !canWrite;
    joinBar.hidden = canWrite || room.kind !== "public";
    joinName.textContent = `#${room.name}`;
    input.placeholder = room.kind === "direct" ? `Message ${room.name}` : `Message #${room.name}`;
    const { state, reason } = this.status;
    let text = "";
    let kind = "";
    if (!canWrite && room.kind !== "public") {
      text = "You are not a member of this room.";
      kind = "blocked";
    } else if (state === "closed") {
      kind = "blocked";
      text =
        reason === "signed_out"
          ? "You are signed out, so you cannot send messages. Sign in to keep chatting."
          : reason === "too_many_tabs"
            ? "Too many open tabs: close some, then try again."
            : "Disconnected by the server. Reload the page to reconnect.";
    } else if (state !== "open" && (this.connectedOnce || this.bannerDue())) {
      kind = "offline";
      text =
        "You are offline. Messages you send now will be delivered when the connection is back.";
    } else if (this.composerLimit) {
      kind = "limit";
      text = this.composerLimit;
    }
    input.disabled = kind === "blocked";
    composer.querySelector("button[type=submit]").disabled = kind === "blocked";
    composer.classList.toggle("offline", kind === "offline");
    note.hidden = !text;
    note.textContent = text;
    note.dataset.kind = kind;
  }

  bannerDue() {
    return Date.now() - PAGE_STARTED > BANNER_DELAY_MS;
  }

  renderBanner() {
    const { banner, connDot } = this.dom;
    if (!banner) return;
    const { state, reason, code, retryAt } = this.status;
    let kind = "";
    let parts = [];
    if (state === "closed" && reason === "signed_out") {
      kind = "signed-out";
      const next = encodeURIComponent(location.pathname);
      parts = [
        "You have been signed out, or your account was deactivated.",
        el("a", { className: "btn small", href: `/accounts/login/?next=${next}`, text: "Sign in" }),
      ];
    } else if (state === "closed" && reason === "too_many_tabs") {
      kind = "stopped";
      parts = [
        "Too many open tabs: the chat is open in too many tabs or windows. Close some, then try again.",
        button("Try again", "restart", "btn small"),
      ];
    } else if (state === "closed") {
      kind = "stopped";
      parts = [
        "The server closed the connection after too many invalid frames.",
        button("Reload", "reload", "btn small"),
      ];
    } else if (state === "waiting") {
      kind = "offline";
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      const why =
        code === CLOSE_SHUTDOWN
          ? "The server is restarting."
          : code === CLOSE_TOO_BIG
            ? "The connection was reset (a frame was too large)."
            : code === CLOSE_SLOW_READER
              ? "The connection fell behind."
              : "You are offline.";
      parts = [
        `${why} Reconnecting${seconds ? ` in ${seconds} s` : ""}…`,
        button("Reconnect now", "reconnect", "btn small"),
      ];
    } else if (state === "connecting" && (this.connectedOnce || this.bannerDue())) {
      kind = "connecting";
      parts = [this.connectedOnce ? "Reconnecting…" : "Connecting…"];
    } else if (state === "open" && this.backUntil) {
      kind = "back";
      parts = ["You are back online."];
    }
    const label = parts.map((part) => (typeof part === "string" ? part : part.textContent)).join();
    if (banner.dataset.label !== label) {
      banner.dataset.label = label;
      banner.replaceChildren(
        ...parts.map((part) => (typeof part === "string" ? el("span", { text: part }) : part)),
      );
    }
    banner.dataset.state = kind;
    banner.hidden = !kind;
    if (connDot) {
      connDot.dataset.state = state;
      connDot.title =
        state === "open" ? "Connected" : state === "closed" ? "Disconnected" : "Connecting…";
    }
  }

  // --- little helpers -----------------------------------------------------------------------

  nearBottom() {
    const { scroller } = this.dom;
    if (!scroller) return true;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.dom.scroller.scrollTop = this.dom.scroller.scrollHeight;
    this.dom.jump.hidden = true;
  }

  toggleMembers() {
    const wide = matchMedia("(min-width: 1100px)").matches;
    this.root.classList.toggle(wide ? "members-collapsed" : "members-open");
  }

  /** On touch screens a tap on one's own message shows its edit and delete buttons. */
  toggleActions(li) {
    for (const other of this.dom.messages?.querySelectorAll(".show-actions") || []) {
      if (other !== li) other.classList.remove("show-actions");
    }
    li?.classList.toggle("show-actions");
  }

  closeDrawers() {
    this.root.classList.remove("nav-open", "members-open");
  }

  filterDirectory(query) {
    const needle = query.trim().toLowerCase();
    let shown = 0;
    for (const li of this.dom.directory.querySelectorAll("li[data-room]")) {
      const match = !needle || li.textContent.toLowerCase().includes(needle);
      li.hidden = !match;
      if (match) shown += 1;
    }
    $("directory-none").hidden = shown > 0;
  }

  toast(text) {
    const { toasts } = this.dom;
    if (!toasts || !text) return;
    const node = el(
      "div",
      { className: "toast", role: "alert" },
      el("span", { text }),
      iconButton("close", "Dismiss", "dismiss"),
    );
    toasts.append(node);
    setTimeout(() => node.remove(), 6_000);
  }
}

const PAGE_STARTED = Date.now();

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/chat/`;
}

function button(text, action, className) {
  return el("button", { type: "button", className, text, dataset: { action } });
}

function iconButton(name, label, action) {
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

function letter(name) {
  return (name || "?").charAt(0).toUpperCase();
}

/** The avatar's colour comes from the stylesheet, keyed by the name's first letter. */
function initial(name) {
  return { initial: (name || "?").charAt(0).toLowerCase() };
}

function roomIcon(room, online = false) {
  if (room.kind === "direct") {
    return el("span", { className: `presence ${online ? "on" : "off"}`, "aria-hidden": "true" });
  }
  return icon(room.kind === "private" ? "lock" : "hash", "icon room-kind");
}

const root = document.getElementById("app");
if (root) {
  const app = new ChatApp(root);
  app.start();
  const wanted = new URLSearchParams(location.search).get("dm");
  if (wanted) app.openDirect(wanted);
}
