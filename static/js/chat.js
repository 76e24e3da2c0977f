// The chat client: one connection per tab (connection.js, over a WebSocket or the HTTP
// fallback), rooms kept in memory by `seq`, messages echoed at once as "pending" and retried
// with the same `ref` until acked. The pages are rendered by Django first; this module adopts
// what is on the page, then keeps it live. The app's methods live in modules by concern
// (frames.js, sending.js, navigation.js, messages.js, views.js, moderation.js, moderator.js,
// search.js, replies.js, reactions.js, mentions.js, notifications.js, attachments.js, files.js);
// docs/client.md describes the behaviour, docs/protocol.md the frames.

import { el } from "./dom.js";
import { MAX_BODY } from "./protocol.js";
import { Connection } from "./connection.js";
import { Outbox, Room, toMessage } from "./store.js";
import {
  $,
  BACK_BANNER_MS,
  BANNER_DELAY_MS,
  iconButton,
  isVisible,
  mixin,
  NEAR_BOTTOM_PX,
  NEAR_TOP_PX,
  socketUrl,
  TYPING_SEND_EVERY_MS,
} from "./ui.js";
import { Attachments } from "./attachments.js";
import { MessageFiles } from "./files.js";
import { ServerFrames } from "./frames.js";
import { MessageList } from "./messages.js";
import { Mentions } from "./mentions.js";
import { Moderation } from "./moderation.js";
import { ModeratorTools } from "./moderator.js";
import { Navigation } from "./navigation.js";
import { Notifications } from "./notifications.js";
import { Reactions } from "./reactions.js";
import { Replies } from "./replies.js";
import { Search } from "./search.js";
import { Sending } from "./sending.js";
import { Views } from "./views.js";

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
    this.staff = false; // staff act as owners in every room (`joined`'s `you`)
    this.memberMenu = null; // {room, user, confirm}: the members panel's open moderation menu
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
      flags: $("room-flags"),
      notice: $("room-notice"),
      noticeText: $("room-notice-text"),
      noticeJoin: $("room-notice-join"),
      settingsButton: $("room-settings-open"),
      settings: $("room-settings"), // the room settings dialog: moderator.js
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
        slowMode: Number(view.dataset.slowMode || 0),
        archived: view.dataset.archived === "1",
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
            mentions: li.dataset.mentions ? li.dataset.mentions.split(",") : [],
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
      if (event.key !== "Escape") return;
      if (this.memberMenu) this.closeMemberMenu({ focus: true });
      else this.closeDrawers();
    });
    this.bindModeration();
    this.bindSearch();
    this.bindReplies();
    this.bindReactions();
    this.bindMentions(); // the composer's "@name" list
    this.bindNotifications();
    this.bindAttachments(); // the paperclip, the uploads over the composer, drop and paste
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
    if (this.memberMenu && !event.target.closest(".mod-menu, .member-mod")) this.closeMemberMenu();
    const target = event.target.closest("a, button, textarea");
    if (!target) this.toggleActions(event.target.closest("li.msg[data-id]"));
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
      default:
        this.onModeratorAction(action, target);
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
    if (status.state === "open" && previous.state === "open") {
      // Moved from the HTTP fallback back onto a socket, never offline: what was in flight on
      // the stream goes again on the socket, under the same refs.
      this.outbox.unsent();
      this.forgetChanges();
    } else if (status.state === "open" && status.resumed) {
      this.backUntil = Date.now() + BACK_BANNER_MS;
    }
    if (previous.state !== status.state || previous.transport !== status.transport) {
      this.renderBanner();
      this.renderComposer();
    }
  }

  /** Once a second: retry overdue sends, expire typing, count down the banner. */
  tick() {
    this.flush();
    const room = this.current;
    if (room && room.typing.size) this.renderTyping();
    this.tickModeration();
    if (this.status.state === "waiting" || (this.backUntil && Date.now() > this.backUntil)) {
      if (this.backUntil && Date.now() > this.backUntil) this.backUntil = 0;
      this.renderBanner();
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

  /** On touch screens a tap on a message shows its buttons (reply, react; edit, delete). */
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

const parts = [ServerFrames, Sending, Navigation, MessageList, Views, Moderation, ModeratorTools];
const features = [Search, Replies, Reactions, Mentions, Notifications, Attachments, MessageFiles];
mixin(ChatApp, ...parts, ...features);

const root = document.getElementById("app");
if (root) {
  const app = new ChatApp(root);
  app.start();
  const wanted = new URLSearchParams(location.search).get("dm");
  if (wanted) app.openDirect(wanted);
  app.openLinkedMessage();
}
