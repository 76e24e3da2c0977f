// The message list of the open room: rows grouped by author and day, pending messages, the
// "New" divider, and the scroll position kept where the reader is.

import {
  dayKey,
  el,
  formatDay,
  formatFull,
  formatTime,
  linkify,
  reconcile,
} from "./dom.js";
import { MAX_BODY } from "./protocol.js";
import {
  button,
  GROUP_GAP_MS,
  iconButton,
  initial,
  letter,
  NEAR_TOP_PX,
  roomIcon,
} from "./ui.js";

export class MessageList {
  renderMessages({ anchor = "auto", incoming = false } = {}) {
    const room = this.current;
    const { scroller, messages, jump } = this.dom;
    if (!room || !messages || this.view !== "room") return;
    const wasAtBottom = this.nearBottom();
    const before = { height: scroller.scrollHeight, top: scroller.scrollTop };
    reconcile(messages, this.rows(room));
    this.syncReactions(); // reactions.js: chips of kept rows are patched in place
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
      this.replyKey(message),
      message.mentions?.join(","),
      message.attachments?.map((file) => file.id).join(","),
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
        if (this.mentionsMe(message)) classes.push("mentioned"); // mentions.js
        const li = el("li", {
          className: classes.join(" "),
          dataset: { seq: message.seq, id: message.id, author: message.author },
        });
        const main = el("div", { className: "msg-main" });
        li.append(this.gutter(message.author, message.created, starts), main);
        if (starts) main.append(this.head(message.author, message.created, message.createdIso));
        if (message.replyTo && !message.deleted) main.append(this.replyQuote(message.replyTo));
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
          const text = linkify(change?.body ?? message.body);
          const body = el("div", { className: "msg-body" }, this.markMentions(text, message));
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
        if (!message.deleted && message.attachments?.length) {
          main.append(this.attachmentList(message.attachments)); // attachments.js
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
        if (!message.deleted) main.append(this.reactionBar(message));
        // Reply and Add reaction for members (replies.js); Edit and Delete for the author.
        const actions = editing || confirming || change ? [] : this.messageActions(message);
        if (own && !message.deleted && !editing && !confirming && !change) {
          actions.push(
            iconButton("edit", "Edit message", "edit"),
            iconButton("trash", "Delete message", "delete"),
          );
        }
        if (actions.length) li.append(el("div", { className: "msg-actions" }, actions));
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
        if (item.replyTo) main.append(this.replyQuote(item.replyTo));
        main.append(el("div", { className: "msg-body" }, linkify(item.body)));
        if (item.attachments?.length) main.append(this.attachmentList(item.attachments));
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
}
