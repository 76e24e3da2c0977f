// Rooms and navigation: opening rooms without reloading, joining, loading history (the latest
// page, older pages, gaps after a reconnect) and marking rooms read.

import { Room, toMessage } from "./store.js";
import {
  FILL_SIZE,
  isVisible,
  PAGE_SIZE,
  READ_DELAY_MS,
  REFRESH_PAGES,
  roomUrl,
} from "./ui.js";

export class Navigation {
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
      else if (error.code === "banned") this.bannedFrom(slug);
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
}
