// Everything on the page but the message list: sidebar, directory, room header, members,
// typing line, composer and the connection banner.

import { el, reconcile } from "./dom.js";
import { CLOSE_SHUTDOWN, CLOSE_SLOW_READER, CLOSE_TOO_BIG } from "./protocol.js";
import {
  BANNER_DELAY_MS,
  button,
  initial,
  letter,
  PAGE_STARTED,
  roomIcon,
  roomUrl,
} from "./ui.js";

export class Views {
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
    const mentions = this.mentionCount(room); // mentions.js
    return {
      key: room.slug,
      version: [room.name, room.kind, unread, mentions, active, online].join("|"),
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
            this.mentionBadge(mentions),
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
    this.renderRoomRules(room);
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
    const room = this.current;
    const me = name === this.me;
    const role = room.roles.get(name) || "member";
    const entries = this.moderationEntries(room, name);
    const menu =
      this.memberMenu?.room === room.slug && this.memberMenu.user === name ? this.memberMenu : null;
    return {
      key: `u:${name}`,
      version: [
        isOnline,
        me,
        role,
        entries.map((entry) => entry.action).join(","),
        menu ? menu.confirm || "open" : "",
      ].join("|"),
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
            role === "member" ? null : el("span", { className: `role-badge ${role}`, text: role }),
            me ? el("span", { className: "member-you", text: "you" }) : null,
            me ? null : el("span", { className: "member-dm", text: "Message" }),
          ),
          entries.length ? this.memberMenuParts(room, name, entries, menu) : null,
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
    const { composer, input, note, joinBar, joinName, notice, noticeText, noticeJoin } = this.dom;
    if (!composer || !room) return;
    // Archived, or the viewer was removed or banned: a notice instead of the composer.
    const closedBy = this.roomNotice(room);
    const canWrite = (room.member || Boolean(room.draftTo)) && !closedBy;
    composer.hidden = !canWrite;
    joinBar.hidden = canWrite || Boolean(closedBy) || room.member || room.kind !== "public";
    joinName.textContent = `#${room.name}`;
    if (notice) {
      notice.hidden = !closedBy;
      notice.dataset.kind = closedBy?.kind || "";
      noticeText.textContent = closedBy?.text || "";
      noticeJoin.hidden = !closedBy?.join;
    }
    input.placeholder = room.kind === "direct" ? `Message ${room.name}` : `Message #${room.name}`;
    const { state, reason } = this.status;
    const rule = canWrite ? this.moderationNote(room) : null;
    let text = "";
    let kind = "";
    if (!canWrite && !closedBy && room.kind !== "public") {
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
    } else if (rule?.kind === "muted") {
      ({ kind, text } = rule);
    } else if (state !== "open" && (this.connectedOnce || this.bannerDue())) {
      kind = "offline";
      text =
        "You are offline. Messages you send now will be delivered when the connection is back.";
    } else if (rule?.kind === "slow-wait") {
      ({ kind, text } = rule);
    } else if (this.composerLimit) {
      kind = "limit";
      text = this.composerLimit;
    } else if (rule) {
      ({ kind, text } = rule);
    }
    // Muted: what was written stays in the box, greyed, until the mute ends.
    input.disabled = kind === "blocked" || kind === "muted";
    composer.querySelector("button[type=submit]").disabled = input.disabled || kind === "slow-wait";
    composer.classList.toggle("offline", kind === "offline");
    note.hidden = !text;
    note.textContent = text;
    note.dataset.kind = kind;
    this.renderReplyBar();
    this.renderUploads(); // attachments.js: the paperclip, and the room's uploads over the box
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
      // Which transport carries the chat is for the curious only: a word in the dot's title.
      const fallback = this.status.transport === "stream";
      connDot.dataset.state = state;
      connDot.dataset.transport = fallback ? "stream" : "socket";
      const connected = fallback ? "Connected (HTTP fallback)" : "Connected";
      connDot.title =
        state === "open" ? connected : state === "closed" ? "Disconnected" : "Connecting…";
    }
  }
}
