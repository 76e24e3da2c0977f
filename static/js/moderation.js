// Room moderation (contract §6) as the viewer lives it: their role and standing in each room,
// the frames that change them (`moderated`, `room_removed`, `room_updated`), and why the
// composer is closed (muted, slowed, archived, removed, banned). The server decides every rule;
// the client offers only what it would allow (moderator.js holds the moderators' tools), and
// says plainly what holds a person back.

import { el, formatDay, formatTime } from "./dom.js";
import { roomFields } from "./store.js";

/** "5 s", "1 min", "1 h": a slow-mode interval as people say it. */
export function duration(seconds) {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** "14:05" today, "Friday, March 7, 14:05" another day. */
function when(date) {
  const day = formatDay(date);
  return day === "Today" ? formatTime(date) : `${day}, ${formatTime(date)}`;
}

function mutedText(until) {
  return until ? `muted until ${when(until)}` : "muted until a moderator unmutes you";
}

export class Moderation {
  // --- what the viewer may do ---------------------------------------------------------------

  /** "owner" (owners, and staff everywhere), "moderator", or null: the viewer's powers. */
  powers(room) {
    if (!room || !room.slug || room.kind === "direct") return null;
    if (this.staff) return "owner";
    if (!room.member) return null;
    return room.role === "owner" || room.role === "moderator" ? room.role : null;
  }

  /** Slow mode holds back members only, never owners, moderators or staff. */
  slowed(room) {
    return room.slowMode > 0 && room.kind !== "direct" && !this.powers(room);
  }

  /** Seconds before slow mode lets the viewer send again (0: now). */
  slowWait(room) {
    return Math.max(0, Math.ceil((room.slowUntil - Date.now()) / 1000));
  }

  /** A mute with an end is over when its end passes, whether or not the timer noticed. */
  mutedNow(room) {
    return room.muted && (!room.mutedUntil || room.mutedUntil > Date.now());
  }

  /** Why the room takes no message from the viewer at all, or null. */
  roomNotice(room) {
    if (room.removed === "banned") {
      return { kind: "banned", text: `You are banned from #${room.name}.` };
    }
    if (room.removed) {
      return {
        kind: "removed",
        text: `You were removed from #${room.name}.`,
        join: room.kind === "public",
      };
    }
    if (room.archived) return { kind: "archived", text: "This room is archived: read-only." };
    return null;
  }

  /** The composer's note about moderation, most pressing first, or null. */
  moderationNote(room) {
    if (this.mutedNow(room)) {
      return { kind: "muted", text: `You are ${mutedText(room.mutedUntil)}.` };
    }
    if (!this.slowed(room)) return null;
    const wait = this.slowWait(room);
    return wait
      ? { kind: "slow-wait", text: `Slow mode: you can send again in ${wait} s.` }
      : { kind: "slow", text: `Slow mode: one message every ${duration(room.slowMode)}.` };
  }

  // --- server frames ------------------------------------------------------------------------

  /** `joined`'s `you`: the viewer's role and standing in the room. */
  standing(room, you) {
    room.role = you.role || "member";
    this.staff = Boolean(you.staff);
    room.muted = Boolean(you.muted);
    room.mutedUntil = you.muted_until ? new Date(you.muted_until) : null;
  }

  on_moderated(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    const mine = frame.user === this.me;
    switch (frame.action) {
      case "mute":
        if (mine) {
          room.muted = true;
          room.mutedUntil = frame.until ? new Date(frame.until) : null;
        }
        break;
      case "unmute":
        if (mine) {
          room.muted = false;
          room.mutedUntil = null;
        }
        break;
      case "promote":
      case "demote": {
        // `role`, the role after, when the server says it (staff may make an owner).
        const role = frame.role || (frame.action === "promote" ? "moderator" : "member");
        if (role === "member") room.roles.delete(frame.user);
        else room.roles.set(frame.user, role);
        if (mine) room.role = role;
        break;
      }
      case "kick":
      case "ban":
        if (mine) {
          this.removedFrom(room, frame.action === "ban" ? "banned" : "removed");
          return;
        }
        room.roles.delete(frame.user);
        if (room.members) room.members = room.members.filter((name) => name !== frame.user);
        break;
    }
    if (room === this.current) {
      this.renderRoom();
      this.renderMembers();
      this.renderComposer();
    }
  }

  on_room_removed(frame) {
    const room = this.rooms.get(frame.room);
    // A ban's own `moderated` may never come: until it does, or a `join` says `banned`, the
    // person was "removed".
    if (!room) return;
    this.removedFrom(room, "removed");
    // The open room says so in place of its composer; any other room, in a toast.
    if (room !== this.current || this.view !== "room") {
      this.toast(`You were removed from #${room.name}.`);
    }
  }

  on_room_updated(frame) {
    const raw = frame.room;
    const room = this.rooms.get(raw.slug);
    if (!room) return;
    this.room(raw.slug, roomFields(raw));
    if (room === this.current) {
      this.renderRoom();
      this.renderComposer();
    }
  }

  /** Kicked or banned: the room leaves the sidebar, and the open room says so. */
  removedFrom(room, how) {
    if (room.removed !== "banned") room.removed = how;
    room.member = false;
    room.role = null;
    room.muted = false;
    room.mutedUntil = null;
    room.slowUntil = 0;
    room.typing.clear();
    if (room.members) room.members = room.members.filter((name) => name !== this.me);
    if (this.memberMenu?.room === room.slug) this.memberMenu = null;
    this.renderAll();
  }

  /** A `join` answered `banned`. */
  bannedFrom(slug) {
    const room = this.rooms.get(slug);
    if (room) {
      room.removed = "banned";
      room.member = false;
    }
    if (room && room === this.current) this.renderAll();
    else this.toast(`You are banned from #${room ? room.name : slug}.`);
  }

  /** A send refused for `muted` or `slow_mode`: the room's state, and the reason in words. */
  heldBack(item, frame) {
    const room = item.room ? this.rooms.get(item.room) : null;
    if (frame.code === "muted") {
      const until = frame.until ? new Date(frame.until) : null;
      if (room) Object.assign(room, { muted: true, mutedUntil: until });
      item.error = `you are ${mutedText(until)}`;
    } else {
      const wait = Math.max(1, Math.ceil(frame.retry_after ?? room?.slowMode ?? 1));
      if (room) room.slowUntil = Date.now() + wait * 1000;
      item.error = `slow mode, wait ${wait} s, then retry`;
    }
    if (room && room === this.current) this.renderComposer();
  }

  /** Once a second: lift a mute whose time is up, count slow mode down. */
  tickModeration() {
    const room = this.current;
    if (!room) return;
    if (room.muted && room.mutedUntil && room.mutedUntil <= Date.now()) {
      room.muted = false;
      room.mutedUntil = null;
      this.renderComposer();
    } else if (room.slowUntil) {
      if (room.slowUntil <= Date.now()) room.slowUntil = 0;
      this.renderComposer();
    }
  }

  // --- the room header ----------------------------------------------------------------------

  /** Archived and slow-mode tags, and the settings button for those who may use it. */
  renderRoomRules(room) {
    const { flags, settingsButton, settings } = this.dom;
    if (flags) {
      const tags = [];
      if (room.archived) tags.push(["archived", "Archived", "Read-only for everyone"]);
      if (room.slowMode > 0 && room.kind !== "direct") {
        const every = duration(room.slowMode);
        tags.push(["slow", `Slow mode ${every}`, `Members may send one message every ${every}`]);
      }
      const key = tags.map(([, text]) => text).join("|");
      if (flags.dataset.key !== key) {
        flags.dataset.key = key;
        flags.replaceChildren(
          ...tags.map(([kind, text, title]) =>
            el("span", { className: `room-flag ${kind}`, text, title }),
          ),
        );
      }
      flags.hidden = !tags.length;
    }
    const power = this.powers(room);
    if (settingsButton) settingsButton.hidden = !power;
    if (settings?.open && !power) settings.close();
  }
}
