// Reactions (contract §7): chips under a message ("👍 2", one's own highlighted, who reacted
// in the tooltip) that toggle one's reaction on a click, and "Add reaction", a small picker of
// common emoji. A `reaction` event patches the chips of its one message in place: the list is
// not rebuilt, and a chip just pressed keeps the focus. The server decides who may react; its
// refusals come back as `error` frames, which frames.js shows as a toast.

import { el } from "./dom.js";

// [emoji, name]: the picker's choice, in the order shown.
export const COMMON_EMOJI = [
  ["👍", "thumbs up"],
  ["👎", "thumbs down"],
  ["❤️", "red heart"],
  ["😂", "tears of joy"],
  ["😄", "grinning"],
  ["😮", "surprised"],
  ["😢", "crying"],
  ["😡", "angry"],
  ["🎉", "party popper"],
  ["🙏", "thank you"],
  ["👏", "clapping"],
  ["🔥", "fire"],
  ["🚀", "rocket"],
  ["👀", "eyes"],
  ["✅", "done"],
  ["❌", "no"],
  ["🤔", "thinking"],
  ["💯", "hundred points"],
  ["😍", "heart eyes"],
  ["😎", "cool"],
  ["🙌", "hooray"],
  ["💡", "idea"],
  ["⭐", "star"],
  ["☕", "coffee"],
];
// Arrow keys move by one, or by a row of this many (the picker's grid, app.css).
const PICKER_COLUMNS = 8;
// The server lists at most this many names per emoji, and counts the rest (protocol.py).
const REACTORS_LISTED = 100;

/** How many reacted with `emoji`: the server's count when it cut the list of names. */
function total(message, emoji) {
  return message.reactionCounts[emoji] ?? message.reactions[emoji].length;
}

/** "alice, bob" (and how many more the server did not name). */
function who(names, count) {
  const more = count - names.length;
  return names.join(", ") + (more > 0 ? `${names.length ? " and " : ""}${more} more` : "");
}

/** Apply a `reaction` event to a held message; false when it changes nothing. */
export function applyReaction(message, emoji, user, on) {
  const names = [...(message.reactions[emoji] || [])];
  const counts = { ...message.reactionCounts };
  const listed = names.includes(user);
  let count = counts[emoji] ?? names.length;
  if (on) {
    if (listed) return false;
    if (names.length < REACTORS_LISTED) names.push(user);
    count += 1;
  } else {
    // Someone beyond the names listed may take theirs back: only the count knows them.
    if (!listed && count <= names.length) return false;
    if (listed) names.splice(names.indexOf(user), 1);
    count -= 1;
  }
  const reactions = { ...message.reactions };
  // New emoji go last: the server orders them by when each was first given.
  if (count > 0) reactions[emoji] = names;
  else delete reactions[emoji];
  if (count > names.length) counts[emoji] = count;
  else delete counts[emoji];
  message.reactions = reactions;
  message.reactionCounts = counts;
  return true;
}

export class Reactions {
  bindReactions() {
    const { messages } = this.dom;
    if (!messages) return;
    this.picker = null; // {id, node, trigger}: the open emoji picker
    messages.addEventListener("click", (event) => this.onReactionClick(event));
    document.addEventListener("click", (event) => {
      const path = event.composedPath();
      if (this.picker && !path.includes(this.picker.node) && !path.includes(this.picker.trigger)) {
        this.closePicker();
      }
    });
    this.adoptReactions();
  }

  /** The page was rendered by the server: take each message's reactions from its chips. */
  adoptReactions() {
    const room = this.current;
    if (!room) return;
    for (const li of this.dom.messages.querySelectorAll("li[data-seq]")) {
      const message = room.messages.get(Number(li.dataset.seq));
      if (!message) continue;
      for (const chip of li.querySelectorAll(".reactions .reaction[data-emoji]")) {
        const { emoji, users, count } = chip.dataset;
        message.reactions[emoji] = users ? users.split(",") : [];
        if (count) message.reactionCounts[emoji] = Number(count);
      }
    }
  }

  onReactionClick(event) {
    const target = event.target.closest("button[data-action]");
    if (!target || event.defaultPrevented) return;
    const li = target.closest("li.msg");
    const id = Number(li?.dataset.id) || null;
    const action = target.dataset.action;
    if (action === "react") {
      this.toggleReaction(id, target.dataset.emoji);
      if (target.closest(".emoji-picker")) this.closePicker({ focus: true });
    } else if (action === "react-pick") {
      this.togglePicker(target, li, id);
    } else {
      return;
    }
    event.preventDefault();
  }

  /** Ask the server to toggle one's `emoji` on message `id`; its `reaction` event shows it. */
  toggleReaction(id, emoji) {
    if (!id || !emoji || !this.canAct(this.current)) return;
    // Without a `ref`: a refusal comes back as an `error` of its own, shown as a toast.
    if (!this.conn.send({ type: "react", id, emoji })) {
      this.toast("You are offline: reactions can be given once the connection is back.");
    }
  }

  on_reaction(frame) {
    const room = this.rooms.get(frame.room);
    const message = room?.messages.get(frame.seq);
    if (!message || message.id !== frame.id) return;
    if (!applyReaction(message, frame.emoji, frame.user, frame.on)) return;
    if (room !== this.current || this.view !== "room") return;
    const bar = this.dom.messages.querySelector(
      `li.msg[data-seq="${frame.seq}"] > .msg-main > .reactions`,
    );
    if (!bar) return;
    const atBottom = this.nearBottom();
    this.patchReactions(bar, message);
    if (atBottom) this.dom.scroller.scrollTop = this.dom.scroller.scrollHeight;
  }

  // --- the chips ----------------------------------------------------------------------------

  reactionsKey(message) {
    const { reactions, reactionCounts } = message;
    return JSON.stringify([reactions, reactionCounts, this.canAct(this.current)]);
  }

  /** The row of chips under a message (empty and hidden when nobody reacted). */
  reactionBar(message) {
    const bar = el("div", { className: "reactions", role: "group", "aria-label": "Reactions" });
    this.patchReactions(bar, message);
    return bar;
  }

  /** After the list was drawn: bring the chips of rows that were kept up to date. */
  syncReactions() {
    const room = this.current;
    const { messages } = this.dom;
    for (const bar of messages.querySelectorAll("li.msg[data-seq] > .msg-main > .reactions")) {
      const message = room.messages.get(Number(bar.closest("li").dataset.seq));
      if (message && bar.dataset.key !== this.reactionsKey(message)) {
        this.patchReactions(bar, message);
      }
    }
    if (this.picker && !this.picker.node.isConnected) this.picker = null;
  }

  /** Update the chips in place, each kept by its emoji, so the focus stays where it is. */
  patchReactions(bar, message) {
    const can = this.canAct(this.current);
    const emojis = Object.keys(message.reactions);
    const chips = bar.querySelectorAll(":scope > .reaction");
    const old = new Map([...chips].map((chip) => [chip.dataset.emoji, chip]));
    const hadFocus = bar.contains(document.activeElement) ? document.activeElement : null;
    emojis.forEach((emoji, i) => {
      const chip = old.get(emoji) || this.chip(emoji);
      old.delete(emoji);
      this.fillChip(chip, message, emoji, can);
      const slot = bar.children[i] || null;
      // Never move a chip that is in place: moving a node takes the focus from it.
      if (chip !== slot) bar.insertBefore(chip, slot);
    });
    for (const chip of old.values()) chip.remove();
    let add = bar.querySelector(":scope > .reaction-add");
    if (can && emojis.length) {
      if (!add) {
        add = el(
          "button",
          {
            type: "button",
            className: "reaction-add",
            title: "Add reaction",
            "aria-label": "Add reaction",
            "aria-haspopup": "dialog",
            dataset: { action: "react-pick" },
          },
          el("span", { "aria-hidden": "true", text: "+" }),
        );
      }
      const slot = bar.children[emojis.length] || null;
      if (slot !== add) bar.insertBefore(add, slot);
    } else {
      add?.remove();
    }
    // The chip that had the focus is gone (its last reaction taken back): keep it nearby.
    if (hadFocus && !hadFocus.isConnected) (add || bar.querySelector(".reaction"))?.focus();
    bar.hidden = !emojis.length;
    bar.dataset.key = this.reactionsKey(message);
  }

  chip(emoji) {
    return el(
      "button",
      { type: "button", className: "reaction", dataset: { action: "react", emoji } },
      el("span", { className: "reaction-emoji", text: emoji }),
      " ",
      el("span", { className: "reaction-count" }),
    );
  }

  fillChip(chip, message, emoji, can) {
    const names = message.reactions[emoji];
    const count = total(message, emoji);
    const mine = names.includes(this.me);
    const people = who(names, count);
    chip.classList.toggle("mine", mine);
    chip.setAttribute("aria-pressed", String(mine));
    chip.title = people;
    chip.setAttribute("aria-label", `${emoji} ${count}: ${people}`);
    chip.disabled = !can;
    chip.lastElementChild.textContent = String(count);
  }

  // --- the picker ---------------------------------------------------------------------------

  togglePicker(trigger, li, id) {
    const same = this.picker?.trigger === trigger;
    this.closePicker({ focus: same });
    const message = this.findMessage(id);
    if (same || !li || !message || message.deleted || !this.canAct(this.current)) return;
    const mine = new Set(
      Object.entries(message.reactions)
        .filter(([, names]) => names.includes(this.me))
        .map(([emoji]) => emoji),
    );
    const options = COMMON_EMOJI.map(([emoji, name], i) =>
      el("button", {
        type: "button",
        className: mine.has(emoji) ? "emoji-option mine" : "emoji-option",
        title: name,
        "aria-label": name,
        "aria-pressed": String(mine.has(emoji)),
        tabindex: i === 0 ? "0" : "-1",
        text: emoji,
        dataset: { action: "react", emoji },
      }),
    );
    const node = el(
      "div",
      { className: "emoji-picker", role: "dialog", "aria-label": "Add reaction" },
      el("div", { className: "emoji-grid" }, options),
    );
    node.addEventListener("keydown", (event) => this.onPickerKey(event, options));
    node.addEventListener("focusout", (event) => {
      // Tab, or a click elsewhere that takes the focus: the picker has done its part.
      if (event.relatedTarget && !node.contains(event.relatedTarget)) this.closePicker();
    });
    // Beside its button: under the chips, or under the toolbar at the row's top right.
    const host = trigger.closest(".reactions") || li;
    node.classList.add(host === li ? "from-toolbar" : "from-chips");
    host.append(node);
    const view = this.dom.scroller.getBoundingClientRect();
    const box = node.getBoundingClientRect();
    if (box.bottom > view.bottom && box.top - view.top > view.bottom - box.bottom) {
      node.classList.add("above");
    }
    trigger.setAttribute("aria-expanded", "true");
    this.picker = { id, node, trigger };
    options[0].focus();
  }

  closePicker({ focus = false } = {}) {
    const picker = this.picker;
    if (!picker) return;
    this.picker = null;
    picker.node.remove();
    picker.trigger.setAttribute("aria-expanded", "false");
    if (focus && picker.trigger.isConnected) picker.trigger.focus();
  }

  /** Arrows, Home and End move through the emoji; Escape closes; Enter and Space pick. */
  onPickerKey(event, options) {
    const at = options.indexOf(document.activeElement);
    const last = options.length - 1;
    const moves = {
      ArrowRight: at + 1,
      ArrowLeft: at - 1,
      ArrowDown: at + PICKER_COLUMNS,
      ArrowUp: at - PICKER_COLUMNS,
      Home: 0,
      End: last,
    };
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.closePicker({ focus: true });
    } else if (event.key in moves && at >= 0) {
      event.preventDefault();
      const next = options[Math.max(0, Math.min(last, moves[event.key]))];
      options[at].tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  }
}
