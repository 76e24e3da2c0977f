// Replies (contract §7): the "Reply" action on a message, the composer's "Replying to NAME"
// bar, and the quote a reply shows above its body. A pending reply keeps its `replyTo` in the
// outbox (sending.js), so retries and reloads send it with the same `reply_to`. Clicking a
// quote scrolls to the original, loading older pages as needed (search.js `showMessage`).

import { el } from "./dom.js";
import { iconButton } from "./ui.js";

// The server quotes this many characters of the message a reply answers (protocol.py).
export const EXCERPT_CHARS = 140;

/** The first EXCERPT_CHARS characters (code points, as the server counts them). */
export function excerpt(body) {
  const chars = Array.from(body || "");
  return chars.length > EXCERPT_CHARS ? chars.slice(0, EXCERPT_CHARS).join("") : body || "";
}

export class Replies {
  bindReplies() {
    const { composer, input, messages } = this.dom;
    if (!composer || !messages) return;
    // The bar sits above the composer; built here, so the templates need no empty markup.
    const bar = el(
      "div",
      { className: "reply-bar", id: "reply-bar", hidden: true, "aria-live": "polite" },
      el("span", { className: "reply-bar-text" }),
      iconButton("close", "Cancel reply (Esc)", "cancel-reply"),
    );
    composer.before(bar);
    this.dom.replyBar = bar;
    bar.addEventListener("click", (event) => {
      if (!event.target.closest("[data-action=cancel-reply]")) return;
      event.preventDefault();
      this.cancelReply({ focus: true });
    });
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !this.current?.replyingTo) return;
      event.preventDefault();
      event.stopPropagation();
      this.cancelReply();
    });
    // Clicks on the message list's own controls: handled here, and marked handled, so the
    // page's click handler (chat.js) leaves them alone.
    messages.addEventListener("click", (event) => this.onMessageClick(event));
    this.adoptQuotes();
  }

  /** The page was rendered by the server: take each reply's quote from its markup. */
  adoptQuotes() {
    const room = this.current;
    if (!room) return;
    for (const node of this.dom.messages.querySelectorAll("li[data-seq] .msg-quote")) {
      const message = room.messages.get(Number(node.closest("li").dataset.seq));
      const { replyId, replySeq, replyAuthor, replyExcerpt } = node.dataset;
      if (!message || !replyId) continue;
      message.replyTo = {
        id: Number(replyId),
        seq: Number(replySeq),
        author: replyAuthor,
        excerpt: replyExcerpt || "",
      };
    }
  }

  onMessageClick(event) {
    const target = event.target.closest("button[data-action]");
    if (!target || event.defaultPrevented) return;
    const id = Number(target.closest("li.msg")?.dataset.id) || null;
    switch (target.dataset.action) {
      case "reply":
        this.startReply(id);
        break;
      case "quote":
        this.openQuote(Number(target.dataset.seq));
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  /** Members may reply and react where they may post (the server checks mutes and the rest). */
  canAct(room) {
    return Boolean(room && room.slug && room.member && !room.archived && !room.removed);
  }

  startReply(id) {
    const room = this.current;
    const message = this.findMessage(id);
    if (!message || message.deleted || !this.canAct(room)) return;
    room.replyingTo = {
      id: message.id,
      seq: message.seq,
      author: message.author,
      excerpt: excerpt(message.body),
    };
    this.renderReplyBar();
    this.dom.input.focus();
  }

  cancelReply({ focus = false } = {}) {
    if (this.current) this.current.replyingTo = null;
    this.renderReplyBar();
    if (focus) this.dom.input.focus();
  }

  /** "Replying to NAME: excerpt" above the composer, while the open room has a reply going. */
  renderReplyBar() {
    const bar = this.dom.replyBar;
    if (!bar) return;
    const room = this.current;
    const reply = room && !this.dom.composer.hidden ? room.replyingTo : null;
    bar.hidden = !reply;
    const text = reply ? this.quoteText(reply) || "deleted message" : "";
    const key = reply ? `${reply.id}:${text}` : "";
    if (bar.dataset.reply === key) return;
    bar.dataset.reply = key;
    bar.firstElementChild.replaceChildren(
      ...(reply
        ? [
            "Replying to ",
            el("strong", { text: reply.author }),
            ": ",
            el("span", { className: "reply-bar-excerpt", text }),
          ]
        : []),
    );
  }

  /**
   * What a quote says of the message it answers: the original as held now (edited or deleted
   * since the reply was sent), else the server's excerpt; "" for a deleted message.
   */
  quoteText(reply) {
    const original = this.current?.messages.get(reply.seq);
    if (!original || original.id !== reply.id) return reply.excerpt;
    return original.deleted ? "" : excerpt(original.body);
  }

  /** A changing part of a message row: its quote, and whether the person may reply/react. */
  replyKey(message) {
    const reply = message.replyTo;
    const quote = reply ? `${reply.id}:${this.quoteText(reply)}` : "";
    return `${this.canAct(this.current)}|${quote}`;
  }

  /** The quote above a reply's body: a button that shows the original. */
  replyQuote(reply) {
    const text = this.quoteText(reply);
    return el(
      "button",
      {
        type: "button",
        className: "msg-quote",
        title: "Show the original message",
        "aria-label": `In reply to ${reply.author}: ${text || "deleted message"}`,
        dataset: { action: "quote", seq: reply.seq },
      },
      el("span", { className: "quote-author", text: reply.author }),
      el("span", {
        className: text ? "quote-text" : "quote-text gone",
        text: text || "deleted message",
      }),
    );
  }

  /** The hover toolbar's buttons every member gets: Reply, Add reaction. */
  messageActions(message) {
    if (message.deleted || !this.canAct(this.current)) return [];
    const pick = iconButton("smile", "Add reaction", "react-pick");
    pick.setAttribute("aria-haspopup", "dialog");
    pick.setAttribute("aria-expanded", "false");
    return [pick, iconButton("reply", "Reply", "reply")];
  }

  /** Scroll to the message a quote answers, loading older pages until it is held. */
  openQuote(seq) {
    const room = this.current;
    if (!room || !seq) return;
    // search.js: loads history back to `seq`, scrolls there and highlights it for a moment.
    this.showMessage(room, seq);
  }
}
