// Mentions: `@username` in a message names a member of its room, and `@room` (written by an
// owner, moderator or staff) names every member. The server decides who a message mentions (its
// `mentions`: usernames, and "room"); this module offers names while one types "@" in the
// composer, marks the names in message bodies and the messages that mention the viewer, and
// counts each room's unread mentions for the sidebar's "@N" pill.

import { el } from "./dom.js";

// What a message's `mentions` holds for `@room`; no user may take the name (the server's rule).
export const ROOM_MENTION = "room";
// The composer offers at most this many names at a time.
const MAX_SUGGESTIONS = 8;
// The server's rule (rooms/mentions.py): "@" at the start or after anything but a word character
// or "@", then the characters of a username. A name may end a sentence ("thanks @bob."): the
// name without its trailing ".", "+" or "-" counts too.
const WORD = "\\p{L}\\p{N}_";
const NAME = `[${WORD}.+-]`;
const WRITTEN = new RegExp(`(^|[^${WORD}@])@(${NAME}+)`, "gu");
// "@" and the start of a name, just before the caret.
const TYPING = new RegExp(`(?:^|[^${WORD}@])@(${NAME}*)$`, "u");

/** Does the message mention `me`: by name, or `@room`? Never one's own message. */
export function mentions(message, me) {
  if (!message || message.deleted || message.author === me) return false;
  const names = message.mentions || [];
  return names.includes(me) || names.includes(ROOM_MENTION);
}

/**
 * Wrap the mentions of a linkified body in `<span class="mention">` elements: the text nodes at
 * the top of `fragment` (not the text of its links) are split, and nothing is parsed as HTML.
 * `me` gets the class `me`, and `@room` too. Returns the fragment.
 */
export function markMentions(fragment, names, me) {
  if (!names || !names.length) return fragment;
  const wanted = new Map(names.map((name) => [name.toLowerCase(), name]));
  for (const node of [...fragment.childNodes]) {
    if (node.nodeType !== Node.TEXT_NODE || !node.data.includes("@")) continue;
    const text = node.data;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(WRITTEN)) {
      const written = match[2];
      const name = [written, written.replace(/[.+-]+$/u, "")].find((candidate) =>
        wanted.has(candidate.toLowerCase()),
      );
      if (!name) continue;
      const start = match.index + match[1].length;
      const mine = [(me || "").toLowerCase(), ROOM_MENTION].includes(name.toLowerCase());
      parts.push(
        text.slice(last, start),
        el("span", {
          className: mine ? "mention me" : "mention",
          text: `@${name}`,
          title: name.toLowerCase() === ROOM_MENTION ? "Everyone in the room" : null,
        }),
      );
      last = start + 1 + name.length;
    }
    if (!parts.length) continue;
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
  return fragment;
}

// Each room's unread mentions: the server's count of those up to a seq (`hello`, `room_added`,
// `unread`), and the seqs of mentions heard live beyond it. Read messages never count, so the
// pill follows the unread count: marking a room read clears both.
const counts = new WeakMap();

function countOf(room) {
  let count = counts.get(room);
  if (!count) counts.set(room, (count = { server: 0, upTo: 0, heard: new Set() }));
  return count;
}

export class Mentions {
  bindMentions() {
    const { composer, input } = this.dom;
    if (!composer) return;
    const list = el("ul", {
      className: "mention-list",
      id: "mention-list",
      role: "listbox",
      "aria-label": "People to mention",
      hidden: true,
    });
    // In the form, over the text box; absolutely placed, so the form's layout is unchanged.
    composer.append(list);
    this.dom.mentionList = list;
    this.suggesting = null; // {start, end, names, active}: what the open list offers
    input.setAttribute("aria-autocomplete", "list");
    // Capture on the form: these keys act on the list before the composer's own handlers
    // (Enter sends, Escape cancels a reply) see them.
    composer.addEventListener("keydown", (event) => this.onMentionKey(event), true);
    input.addEventListener("input", () => this.suggestMentions());
    input.addEventListener("click", () => this.suggestMentions());
    input.addEventListener("keyup", (event) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) this.suggestMentions();
    });
    input.addEventListener("blur", () => this.closeMentions());
    // Keep the focus in the text box while a name is clicked.
    list.addEventListener("pointerdown", (event) => event.preventDefault());
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.chooseMention(option.dataset.name);
    });
  }

  // --- the composer's list ----------------------------------------------------------------

  /** The names one may mention in the open room that start with `prefix`. */
  mentionNames(room, prefix) {
    const start = prefix.toLowerCase();
    const names = (room.members || [])
      .filter((name) => name !== this.me && name.toLowerCase().startsWith(start))
      .sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }))
      .slice(0, MAX_SUGGESTIONS);
    // `@room` is for owners, moderators and staff (moderation.js `powers`).
    if (this.powers(room) && ROOM_MENTION.startsWith(start)) names.push(ROOM_MENTION);
    return names;
  }

  /** Show (or close) the list for the "@name" being typed just before the caret. */
  suggestMentions() {
    const { input } = this.dom;
    const room = this.current;
    const caret = input.selectionStart;
    const typed =
      room && room.slug && !input.disabled && caret === input.selectionEnd
        ? input.value.slice(0, caret).match(TYPING)
        : null;
    const names = typed ? this.mentionNames(room, typed[1]) : [];
    if (!names.length) {
      this.closeMentions();
      return;
    }
    const previous = this.suggesting?.names[this.suggesting.active];
    this.suggesting = {
      start: caret - typed[1].length - 1,
      end: caret,
      names,
      active: Math.max(0, names.indexOf(previous)),
    };
    this.renderMentionList();
  }

  renderMentionList() {
    const { input, mentionList: list } = this.dom;
    const { names, active } = this.suggesting;
    list.replaceChildren(
      ...names.map((name, index) =>
        el(
          "li",
          {
            id: `mention-option-${index}`,
            role: "option",
            className: index === active ? "active" : "",
            "aria-selected": index === active ? "true" : "false",
            dataset: { name },
          },
          el("span", { className: "mention-name", text: `@${name}` }),
          name === ROOM_MENTION
            ? el("span", { className: "mention-hint", text: "everyone in the room" })
            : null,
        ),
      ),
    );
    list.hidden = false;
    // A textarea takes no combobox role: the list is tied to it by these two.
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("aria-activedescendant", `mention-option-${active}`);
  }

  closeMentions() {
    const { input, mentionList: list } = this.dom;
    if (!list) return;
    this.suggesting = null;
    list.hidden = true;
    list.replaceChildren();
    input.removeAttribute("aria-activedescendant");
    input.removeAttribute("aria-controls");
  }

  onMentionKey(event) {
    const open = this.suggesting;
    if (!open || event.target !== this.dom.input || event.isComposing) return;
    const { names } = open;
    const plain = !(event.shiftKey || event.altKey || event.ctrlKey || event.metaKey);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      open.active = (open.active + step + names.length) % names.length;
      this.renderMentionList();
    } else if ((event.key === "Enter" || event.key === "Tab") && plain) {
      this.chooseMention(names[open.active]);
    } else if (event.key === "Escape") {
      this.closeMentions();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  /** Replace the "@pre" being typed with "@name ", and carry on typing after it. */
  chooseMention(name) {
    const open = this.suggesting;
    const { input } = this.dom;
    if (!open || !name) return;
    // The text changed under the list (another room's draft came in): offer again instead.
    if (input.value[open.start] !== "@" || input.selectionStart !== open.end) {
      this.suggestMentions();
      return;
    }
    const before = input.value.slice(0, open.start);
    const after = input.value.slice(open.end);
    const inserted = `@${name} `;
    input.value = before + inserted + after.replace(/^ /, "");
    const caret = before.length + inserted.length;
    input.setSelectionRange(caret, caret);
    this.closeMentions();
    input.focus();
    // As if typed: the draft, the length note and `typing` follow (chat.js `onComposerInput`).
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // --- messages ---------------------------------------------------------------------------

  /** Does the message mention the viewer (by name or `@room`)? */
  mentionsMe(message) {
    return mentions(message, this.me);
  }

  /** A body's fragment (linkified) with its mentions marked. */
  markMentions(fragment, message) {
    return markMentions(fragment, message.mentions, this.me);
  }

  // --- counting ---------------------------------------------------------------------------

  /** The server counted `count` unread mentions in the room, among its messages up to `upTo`. */
  countMentions(room, count, upTo) {
    if (count === undefined || count === null) return; // a server that does not count them
    const known = countOf(room);
    known.server = count;
    known.upTo = upTo;
    for (const seq of known.heard) if (seq <= upTo) known.heard.delete(seq);
  }

  /** The room's unread messages that mention the viewer: the sidebar's "@N". */
  mentionCount(room) {
    const known = counts.get(room);
    if (!known || !room.unread) return 0;
    let count = room.lastRead < known.upTo ? known.server : 0;
    for (const seq of known.heard) if (seq > room.lastRead && seq > known.upTo) count += 1;
    return count;
  }

  /** The sidebar's "@N" beside a room's unread count, or nothing when no mention waits. */
  mentionBadge(count) {
    if (!count) return null;
    const label = count === 1 ? "1 unread mention" : `${count} unread mentions`;
    return el("span", {
      className: "mention-badge",
      text: count > 99 ? "@99+" : `@${count}`,
      title: label,
      "aria-label": label,
    });
  }

  /**
   * A live `message`, before the room counts it (frames.js `on_message`): a new one that
   * mentions the viewer counts until read, and may deserve a desktop notification. History
   * and the fill after a reconnect never come here.
   */
  heardMessage(room, message) {
    if (message.seq <= room.lastSeq || message.author === this.me) return;
    if (this.mentionsMe(message)) countOf(room).heard.add(message.seq);
    this.notifyMessage(room, message);
  }
}
