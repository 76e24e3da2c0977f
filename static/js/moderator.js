// The tools of a room's owners and moderators (contract §6): the members panel's moderation
// menu, and the room settings dialog (topic, slow mode, archive, invite, unban). What the viewer
// may do at all, and what they see of the rules, is moderation.js.

import { el, icon } from "./dom.js";
import { duration } from "./moderation.js";
import { $, button } from "./ui.js";

// The settings dialog's slow-mode choices, in seconds (0: off); the server takes 0 to 21,600.
const SLOW_MODES = [0, 5, 10, 30, 60, 300, 900, 3600];

// The members menu's mutes: minutes (null: until unmuted), and how long that is in words.
const MUTES = [
  [10, "10 minutes"],
  [60, "1 hour"],
  [1440, "1 day"],
  [null, null],
];

// Actions that take someone out of the room are confirmed first.
const CONFIRM = {
  kick: { label: "Kick", ask: (name, room) => `Kick ${name} from #${room}? They may join again.` },
  ban: {
    label: "Ban",
    ask: (name, room) => `Ban ${name} from #${room}? They cannot join again until unbanned.`,
  },
};

function doneText(action, user, minutes) {
  const length = MUTES.find(([m]) => m === minutes)?.[1];
  switch (action) {
    case "mute":
      return minutes
        ? `${user} is muted for ${length || `${minutes} minutes`}.`
        : `${user} is muted until unmuted.`;
    case "unmute":
      return `${user} is no longer muted.`;
    case "kick":
      return `${user} was kicked from the room.`;
    case "ban":
      return `${user} is banned from the room.`;
    case "unban":
      return `${user} is no longer banned.`;
    case "promote":
      return `${user} is now a moderator.`;
    case "demote":
      return `${user} is now a member.`;
    default:
      return "";
  }
}

/** A line of the settings dialog: `kind` "ok" or "error". Status lines stay in the page (a
 * live region must be there before it speaks); an error line shows only with an error. */
function say(node, text, kind = "") {
  node.textContent = text;
  node.dataset.kind = kind;
  if (node.matches(".form-error")) node.hidden = !text;
}

/** A request's failure in words: the server's own detail, or why no answer came. */
function failure(error) {
  if (error.message === "offline") return "You are offline: try again once the connection is back.";
  if (error.message === "timeout") return "The server did not answer in time: try again.";
  return error.message;
}

export class ModeratorTools {
  /** The members menu's entries for `name`; none, no menu. */
  moderationEntries(room, name) {
    const power = this.powers(room);
    if (!power || name === this.me) return [];
    const role = room.roles.get(name) || "member";
    // A moderator cannot act on an owner or another moderator; only staff act on an owner.
    if (power === "moderator" && role !== "member") return [];
    if (role === "owner" && !this.staff) return [];
    const entries = MUTES.map(([minutes, length]) => ({
      action: "mute",
      minutes,
      label: length ? `Mute for ${length}` : "Mute until unmuted",
      group: "mute",
    }));
    entries.push({ action: "unmute", label: "Unmute", group: "mute" });
    if (power === "owner" && role === "member") {
      entries.push({ action: "promote", label: "Promote to moderator", group: "role" });
    }
    if (power === "owner" && role !== "member") {
      entries.push({ action: "demote", label: "Demote to member", group: "role" });
    }
    entries.push({ action: "kick", label: "Kick…", group: "out" });
    entries.push({ action: "ban", label: "Ban…", group: "out" });
    return entries;
  }

  /** The click of a button with a `data-action` of these tools. */
  onModeratorAction(action, target) {
    const { member, mod, minutes } = target.dataset;
    if (action === "member-menu") this.toggleMemberMenu(member);
    else if (action === "moderate-confirm") this.confirmModeration(member, mod);
    else if (action === "moderate-cancel") this.closeMemberMenu({ focus: true });
    else if (action === "moderate") this.moderateFromMenu(member, mod, Number(minutes) || null);
    else if (action === "room-settings") this.openSettings();
    else if (action === "close-settings") this.closeSettings();
  }

  // --- the members menu ---------------------------------------------------------------------

  /** The menu button on `name`'s row, and while open, the menu (or a confirmation) below. */
  memberMenuParts(room, name, entries, state) {
    const id = `moderate-${name}`;
    const trigger = el(
      "button",
      {
        type: "button",
        className: "icon-btn member-mod",
        title: `Moderate ${name}`,
        "aria-label": `Moderate ${name}`,
        "aria-haspopup": "menu",
        "aria-expanded": state ? "true" : "false",
        "aria-controls": state ? id : null,
        dataset: { action: "member-menu", member: name },
      },
      icon("more", "icon dots"),
    );
    if (!state) return [trigger];
    const confirm = state.confirm && CONFIRM[state.confirm];
    if (confirm) {
      return [
        trigger,
        el(
          "div",
          {
            className: "mod-menu mod-confirm",
            id,
            role: "alertdialog",
            "aria-label": `${confirm.label} ${name}?`,
          },
          el("p", { text: confirm.ask(name, room.name) }),
          el(
            "div",
            { className: "mod-confirm-actions" },
            button("Cancel", "moderate-cancel", "btn small"),
            el("button", {
              type: "button",
              className: "btn small danger",
              text: confirm.label,
              dataset: { action: "moderate", member: name, mod: state.confirm },
            }),
          ),
        ),
      ];
    }
    const items = [];
    let group = null;
    for (const entry of entries) {
      if (group !== null && entry.group !== group) {
        items.push(el("div", { className: "mod-sep", role: "separator" }));
      }
      group = entry.group;
      const dataset = {
        action: CONFIRM[entry.action] ? "moderate-confirm" : "moderate",
        member: name,
        mod: entry.action,
      };
      if (entry.minutes) dataset.minutes = String(entry.minutes);
      items.push(
        el("button", {
          type: "button",
          role: "menuitem",
          tabindex: "-1",
          className: `mod-item${entry.group === "out" ? " danger" : ""}`,
          text: entry.label,
          dataset,
        }),
      );
    }
    return [
      trigger,
      el(
        "div",
        { className: "mod-menu", id, role: "menu", "aria-label": `Moderate ${name}` },
        items,
      ),
    ];
  }

  memberNode(name, selector) {
    const row = this.dom.memberList?.querySelector(`li[data-user="${CSS.escape(name)}"]`);
    return row ? row.querySelector(selector) : null;
  }

  toggleMemberMenu(name) {
    const open = this.memberMenu?.user === name;
    this.memberMenu = open ? null : { room: this.current.slug, user: name, confirm: null };
    this.renderMembers();
    this.memberNode(name, open ? ".member-mod" : "[role=menuitem]")?.focus();
  }

  closeMemberMenu({ focus = false } = {}) {
    const menu = this.memberMenu;
    if (!menu) return;
    this.memberMenu = null;
    this.renderMembers();
    if (focus) this.memberNode(menu.user, ".member-mod")?.focus();
  }

  confirmModeration(name, action) {
    if (!this.memberMenu) return;
    this.memberMenu.confirm = action;
    this.renderMembers();
    this.memberNode(name, ".mod-confirm button")?.focus();
  }

  /** Arrow keys, Home and End move through the open menu; Tab leaves it. */
  onMemberMenuKey(event) {
    const menu = event.target.closest(".mod-menu[role=menu]");
    if (!menu) return;
    const items = [...menu.querySelectorAll("[role=menuitem]")];
    const at = items.indexOf(event.target);
    const next = {
      ArrowDown: items[(at + 1) % items.length],
      ArrowUp: items[(at - 1 + items.length) % items.length],
      Home: items[0],
      End: items[items.length - 1],
    }[event.key];
    if (next) {
      event.preventDefault();
      next.focus();
    } else if (event.key === "Tab") {
      event.preventDefault();
      this.closeMemberMenu({ focus: true });
    }
  }

  /** Send a `moderate` frame; resolves to [done, what to tell the person]. */
  async moderate(user, action, minutes = null, room = this.current) {
    const frame = { type: "moderate", room: room.slug, user, action };
    if (minutes) frame.minutes = minutes;
    try {
      await this.conn.request(frame);
    } catch (error) {
      return [false, failure(error)];
    }
    return [true, doneText(action, user, minutes)];
  }

  /** A choice of the members menu. */
  async moderateFromMenu(user, action, minutes) {
    const room = this.current;
    this.closeMemberMenu({ focus: true });
    const [, text] = await this.moderate(user, action, minutes, room);
    this.toast(text);
  }

  // --- the room settings dialog -------------------------------------------------------------

  bindModeration() {
    Object.assign(this.dom, {
      settingsRoom: $("settings-room"),
      settingsForm: $("settings-form"),
      inviteForm: $("invite-form"),
      unbanForm: $("unban-form"),
    });
    const { memberList, settings, settingsForm, inviteForm, unbanForm } = this.dom;
    memberList?.addEventListener("keydown", (event) => this.onMemberMenuKey(event));
    if (!settings) return;
    const on = (form, handler) =>
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        handler.call(this, form);
      });
    on(settingsForm, this.saveSettings);
    on(inviteForm, this.invite);
    on(unbanForm, this.unban);
  }

  openSettings() {
    const room = this.current;
    const { settings, settingsForm: form } = this.dom;
    if (!settings || !room || !this.powers(room)) return;
    this.dom.settingsRoom.textContent = `#${room.name}`;
    form.elements.topic.value = room.topic || "";
    const choices = SLOW_MODES.includes(room.slowMode)
      ? SLOW_MODES
      : [...SLOW_MODES, room.slowMode].sort((a, b) => a - b);
    form.elements.slow_mode.replaceChildren(
      ...choices.map((seconds) =>
        el("option", {
          value: seconds,
          text: seconds ? `One message every ${duration(seconds)}` : "Off",
        }),
      ),
    );
    form.elements.slow_mode.value = String(room.slowMode);
    form.elements.archived.checked = room.archived;
    for (const node of settings.querySelectorAll(".form-error, .form-status")) say(node, "");
    this.dom.inviteForm.reset();
    this.dom.unbanForm.reset();
    settings.showModal();
  }

  closeSettings() {
    this.dom.settings?.close();
  }

  /** Send only what changed; the dialog closes once the server has taken it. */
  async saveSettings(form) {
    const room = this.current;
    const error = form.querySelector(".form-error");
    const frame = { type: "room_settings", room: room.slug };
    const topic = form.elements.topic.value.trim();
    const slowMode = Number(form.elements.slow_mode.value);
    const archived = form.elements.archived.checked;
    if (topic !== (room.topic || "")) frame.topic = topic;
    if (slowMode !== room.slowMode) frame.slow_mode = slowMode;
    if (archived !== room.archived) frame.archived = archived;
    if (Object.keys(frame).length === 2) {
      this.closeSettings();
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      await this.conn.request(frame);
    } catch (problem) {
      say(error, failure(problem), "error");
      return;
    } finally {
      submit.disabled = false;
    }
    this.closeSettings();
    this.toast("Room settings saved.");
  }

  async invite(form) {
    const room = this.current;
    const status = form.querySelector(".form-status");
    const user = form.elements.user.value.trim();
    if (!user) return;
    try {
      await this.conn.request({ type: "invite", room: room.slug, user });
    } catch (error) {
      say(status, failure(error), "error");
      return;
    }
    form.reset();
    say(status, `${user} was added to #${room.name}.`, "ok");
  }

  async unban(form) {
    const status = form.querySelector(".form-status");
    const user = form.elements.user.value.trim();
    if (!user) return;
    const [done, text] = await this.moderate(user, "unban");
    if (done) form.reset();
    say(status, text, done ? "ok" : "error");
  }
}
