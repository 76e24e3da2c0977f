// Finding old messages: the search field in the sidebar, its results panel (`GET /api/search`,
// contract §7), and opening a result at its message in its room, however far back it lies.
// Bodies are shown as text nodes and <mark> elements only, never parsed as HTML.

import { el, formatDay, formatFull, formatTime } from "./dom.js";
import { $, roomUrl } from "./ui.js";

// Typing waits this long for a pause before searching; Enter searches at once.
export const SEARCH_DEBOUNCE_MS = 300;
// A found message stays highlighted this long after its room scrolled to it.
const FOUND_MS = 2_500;
// Loading older pages to reach a message gives up after this long (offline, or very far back).
const REVEAL_TIMEOUT_MS = 30_000;
// Long bodies are cut to about this many characters around their first match.
const EXCERPT_CHARS = 280;
// A link to a message in its room: /rooms/<slug>/#seq-<seq>.
const LINK_HASH = /^#seq-(\d+)$/;
const WORD = /[\p{L}\p{N}_]+/gu;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Search {
  bindSearch() {
    const form = $("search-form");
    if (!form) return;
    this.finder = {
      query: "", // what the shown results answer
      scope: null, // the room slug they were limited to
      key: "", // query and scope of the last request
      results: [],
      hasMore: false,
      state: "idle", // idle | loading | more | done | error
      error: "",
      token: 0,
      timer: null,
      controller: null,
    };
    Object.assign(this.dom, {
      searchBox: $("search-box"),
      searchForm: form,
      searchInput: $("search-input"),
      searchPanel: $("search-panel"),
      searchSummary: $("search-summary"),
      searchScope: $("search-scope"),
      searchRoomOnly: $("search-room-only"),
      searchScopeName: $("search-scope-name"),
      searchResults: $("search-results"),
      searchNote: $("search-note"),
      searchMore: $("search-more"),
    });
    const { searchBox, searchInput, searchRoomOnly, searchResults, searchMore } = this.dom;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.runSearch();
    });
    searchInput.addEventListener("input", () => this.scheduleSearch());
    searchInput.addEventListener("focus", () => {
      if (this.finder.state !== "idle" && searchInput.value.trim()) this.showSearch();
    });
    searchRoomOnly.addEventListener("change", () => this.runSearch());
    searchMore.addEventListener("click", () => this.runSearch({ more: true }));
    $("search-close").addEventListener("click", () => this.closeSearch({ focus: true }));
    searchResults.addEventListener("click", (event) => this.onResultClick(event));
    searchBox.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || this.dom.searchPanel.hidden) return;
      // The field's own Escape would clear the query: keep it, close the results.
      event.preventDefault();
      event.stopPropagation();
      this.closeSearch({ focus: true });
    });
    document.addEventListener("keydown", (event) => this.onSearchShortcut(event));
    document.addEventListener("click", (event) => {
      // The path, not the target: a click may re-render (and detach) the button it hit.
      if (!event.composedPath().includes(searchBox)) this.closeSearch();
    });
    window.addEventListener("hashchange", () => this.openLinkedMessage());
  }

  /** "/" and Ctrl+K (⌘K) focus the field unless the person is typing something. */
  onSearchShortcut(event) {
    const { searchInput, searchPanel } = this.dom;
    if (event.key === "Escape" && !searchPanel.hidden && !isEditable(event.target)) {
      this.closeSearch();
      return;
    }
    const key = event.key || "";
    const slash = key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey;
    const k = key.toLowerCase() === "k" && (event.ctrlKey || event.metaKey) && !event.altKey;
    if (!(slash || k) || event.isComposing || (slash && event.target === searchInput)) return;
    // An empty composer is not "typing": the shortcut works from it (it has the focus).
    const { target } = event;
    const typing =
      isEditable(target) &&
      target !== searchInput &&
      !(target === this.dom.input && !this.dom.input.value);
    if (typing) return;
    event.preventDefault();
    if (matchMedia("(max-width: 760px)").matches) this.root.classList.add("nav-open");
    searchInput.focus();
    searchInput.select();
  }

  scheduleSearch() {
    clearTimeout(this.finder.timer);
    if (!this.dom.searchInput.value.trim()) {
      this.resetSearch();
      return;
    }
    this.finder.timer = setTimeout(() => this.runSearch(), SEARCH_DEBOUNCE_MS);
  }

  resetSearch() {
    const finder = this.finder;
    finder.controller?.abort();
    Object.assign(finder, { query: "", key: "", results: [], hasMore: false, state: "idle" });
    finder.token += 1;
    this.closeSearch();
  }

  /** The room the "only in" box limits the search to: the open room, if any. */
  searchRoom() {
    const room = this.current;
    return this.view === "room" && room && room.slug ? room : null;
  }

  /** Ask the server: a first page (a new query or scope), or the next one (`more`). */
  async runSearch({ more = false } = {}) {
    const finder = this.finder;
    const { searchInput, searchRoomOnly } = this.dom;
    clearTimeout(finder.timer);
    const query = more ? finder.query : searchInput.value.trim();
    if (!query) return this.resetSearch();
    const room = this.searchRoom();
    const scope = more ? finder.scope : room && searchRoomOnly.checked ? room.slug : null;
    const key = `${scope || ""}\u0000${query}`;
    // The same query and scope as the shown (or coming) results: nothing to ask, unless it failed.
    if (!more && key === finder.key && finder.state !== "error" && finder.state !== "idle") {
      return this.showSearch();
    }
    if (more && (!finder.hasMore || finder.state === "more")) return;
    finder.controller?.abort();
    const controller = new AbortController();
    const token = ++finder.token;
    Object.assign(finder, { controller, key, error: "" });
    if (more) {
      finder.state = "more";
    } else {
      Object.assign(finder, { query, scope, results: [], hasMore: false, state: "loading" });
    }
    this.showSearch();
    const params = new URLSearchParams({ q: query });
    if (scope) params.set("room", scope);
    const last = finder.results[finder.results.length - 1];
    if (more && last) params.set("before", String(last.message.id));
    let page;
    try {
      page = await fetchResults(`/api/search?${params}`, controller.signal);
    } catch (error) {
      if (token !== finder.token) return; // a newer search replaced this one
      finder.state = "error";
      finder.error = error.message;
      return this.renderSearch();
    }
    if (token !== finder.token) return;
    const focusNext = more && document.activeElement === this.dom.searchMore;
    const first = finder.results.length;
    finder.results.push(...page.results);
    finder.hasMore = Boolean(page.has_more);
    finder.state = "done";
    this.renderSearch();
    // "More results" had the focus: give it to the first new result (the button may be gone).
    if (focusNext) this.dom.searchResults.children[first]?.querySelector("a")?.focus();
  }

  showSearch() {
    this.dom.searchPanel.hidden = false;
    this.renderSearch();
  }

  closeSearch({ focus = false } = {}) {
    const { searchPanel, searchInput } = this.dom;
    if (!searchPanel || searchPanel.hidden) return;
    searchPanel.hidden = true;
    if (focus) searchInput.focus();
  }

  renderSearch() {
    const finder = this.finder;
    const { searchSummary, searchScope, searchRoomOnly, searchScopeName } = this.dom;
    const { searchResults, searchNote, searchMore, searchPanel } = this.dom;
    if (searchPanel.hidden) return;
    const room = this.searchRoom();
    searchScope.hidden = !room;
    if (!room) searchRoomOnly.checked = false;
    searchScopeName.textContent = room ? this.roomLabel(room.slug) : "";
    const { query, scope, results, state } = finder;
    const where = scope ? ` in ${this.roomLabel(scope)}` : "";
    const count = `${results.length}${finder.hasMore ? "+" : ""}`;
    let summary = "";
    if (state === "loading") summary = "Searching…";
    else if (state === "error" && !results.length) summary = "The search failed";
    else if (results.length) {
      summary = `${count} ${plural(results.length, "message")} for “${query}”${where}`;
    }
    else if (state === "done") summary = `No messages match “${query}”${where}`;
    searchSummary.textContent = summary;
    searchPanel.dataset.state = state;
    searchResults.setAttribute("aria-busy", String(state === "loading" || state === "more"));
    const words = searchWords(query);
    // Rows already shown are kept (a "More results" page only adds).
    const shown = searchResults.children.length;
    if (shown > results.length || searchResults.dataset.query !== finder.key) {
      searchResults.replaceChildren();
      searchResults.dataset.query = finder.key;
    }
    for (const hit of results.slice(searchResults.children.length)) {
      searchResults.append(this.searchRow(hit, words));
    }
    const note = [];
    if (state === "error") {
      note.push(el("span", { text: finder.error }), " ");
      note.push(el("button", { type: "button", className: "link-btn", text: "Try again" }));
    } else if (state === "done" && !results.length) {
      note.push(
        el("span", { text: scope ? "Try other words, or every room." : "Try other words." }),
      );
      if (scope) {
        note.push(" ", el("button", { type: "button", className: "link-btn", text: "Search every room" }));
      }
    }
    searchNote.replaceChildren(...note);
    searchNote.hidden = !note.length;
    searchNote.dataset.kind = state === "error" ? "error" : "empty";
    searchNote.setAttribute("role", state === "error" ? "alert" : "status");
    const retry = searchNote.querySelector("button");
    if (retry) {
      retry.addEventListener("click", () => {
        if (state !== "error") searchRoomOnly.checked = false;
        this.runSearch({ more: state === "error" && results.length > 0 });
      });
    }
    searchMore.hidden = !finder.hasMore;
    searchMore.disabled = state === "more";
    searchMore.textContent = state === "more" ? "Loading…" : "More results";
  }

  searchRow(hit, words) {
    const { room: slug, message } = hit;
    const created = new Date(message.created_at);
    return el(
      "li",
      {},
      el(
        "a",
        {
          className: "search-hit",
          href: `${roomUrl(slug)}#seq-${message.seq}`,
          dataset: { searchRoom: slug, seq: message.seq },
        },
        el(
          "span",
          { className: "search-meta" },
          el("span", { className: "search-room", text: this.roomLabel(slug) }),
          el("span", { className: "search-author", text: message.author }),
          el("time", {
            className: "search-time",
            datetime: message.created_at,
            title: formatFull(created),
            text: `${formatDay(created)} ${formatTime(created)}`,
          }),
        ),
        el("span", { className: "search-body" }, highlight(message.body, words)),
      ),
    );
  }

  /** "#name" for a room, the other person's name for a direct conversation. */
  roomLabel(slug) {
    const room = this.rooms.get(slug);
    if (room) return room.kind === "direct" ? room.name : `#${room.name}`;
    const listed = document.querySelector(`#directory-list li[data-room="${CSS.escape(slug)}"]`);
    const name = listed?.querySelector(".directory-name")?.textContent.trim();
    return `#${name || slug}`;
  }

  onResultClick(event) {
    const link = event.target.closest("a.search-hit");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    this.closeSearch();
    this.openResult(link.dataset.searchRoom, Number(link.dataset.seq));
  }

  /** Open `slug` at message `seq`: in place for rooms the page can show, else as a page. */
  async openResult(slug, seq) {
    const room = this.rooms.get(slug);
    const here = Boolean(room) && room === this.current && this.view === "room";
    if (!this.dom.roomView || !room || !(room.member || here)) {
      // The room's page shows the message when it loads (openLinkedMessage).
      location.assign(`${roomUrl(slug)}#seq-${seq}`);
      return;
    }
    if (!here) await this.open(room, { push: true });
    if (this.current === room) await this.showMessage(room, seq);
  }

  /** A page opened at /rooms/<slug>/#seq-<seq> scrolls to that message. */
  openLinkedMessage() {
    const match = location.hash.match(LINK_HASH);
    if (!match) return;
    history.replaceState(history.state, "", location.pathname + location.search);
    const room = this.current;
    if (room && room.slug && this.view === "room") this.showMessage(room, Number(match[1]));
  }

  /** Load older pages until `seq` is held, scroll it into view and highlight it briefly. */
  async showMessage(room, seq) {
    const deadline = Date.now() + REVEAL_TIMEOUT_MS;
    while (!room.messages.has(seq) && this.current === room && Date.now() < deadline) {
      // Everything from `lo` on is held: a message of the room that is not there is gone.
      if (room.loaded && (!room.hasMoreBefore || (room.lo !== null && room.lo <= seq))) break;
      // Not loaded or offline yet (the next `hello` loads), or a page already on its way.
      if (!room.loaded || room.loadingOlder || !this.conn?.isOpen) await pause(100);
      else await this.loadOlder(room, { render: false });
    }
    if (this.current !== room || this.view !== "room") return;
    this.renderMessages({ anchor: "none" });
    const { scroller, messages } = this.dom;
    const li = messages.querySelector(`li.msg[data-seq="${seq}"]`);
    if (!li) {
      this.toast("That message could not be loaded.");
      return;
    }
    const offset = li.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    scroller.scrollTop = Math.max(0, scroller.scrollTop + offset - scroller.clientHeight / 3);
    li.classList.add("found");
    setTimeout(() => li.classList.remove("found"), FOUND_MS);
  }
}

async function fetchResults(url, signal) {
  let response;
  try {
    response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error("The search could not reach the server. Check the connection and try again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  if (!response.ok || !data || !Array.isArray(data.results)) {
    throw new Error(data?.detail || `The search failed (HTTP ${response.status}). Try again.`);
  }
  return data;
}

function isEditable(node) {
  return Boolean(node?.closest?.("input, textarea, select, [contenteditable]"));
}

function plural(n, word) {
  return n === 1 ? word : `${word}s`;
}

/**
 * The words to highlight: the query's words, except those it leaves out (`-word`) and the
 * `or` of PostgreSQL's web search syntax. Longer words lose a common ending, so that "rooms"
 * also marks "room" and "rooming" (the server matches stemmed words on PostgreSQL).
 */
export function searchWords(query) {
  const words = [];
  for (const match of query.matchAll(WORD)) {
    const word = match[0].toLowerCase();
    if (query[match.index - 1] === "-" || word === "or") continue;
    words.push(word.length > 4 ? word.replace(/(ing|ed|es|s)$/, "") : word);
  }
  return [...new Set(words)];
}

function matches(token, words) {
  const lower = token.toLowerCase();
  // Numbers and short words match whole; longer ones by their stem.
  return words.some((word) =>
    word.length < 3 || /^\d+$/.test(word) ? lower === word : lower.startsWith(word),
  );
}

/** The body (cut around its first match when long) as text nodes and <mark> elements. */
export function highlight(body, words) {
  const tokens = [...body.matchAll(WORD)].filter((match) => matches(match[0], words));
  let start = 0;
  let end = body.length;
  if (body.length > EXCERPT_CHARS) {
    // Never cut a character in two (an emoji is two UTF-16 units).
    const whole = (i) => (/[\uDC00-\uDFFF]/.test(body[i] || "") ? i + 1 : i);
    const first = tokens[0]?.index ?? 0;
    start = whole(Math.max(0, first - EXCERPT_CHARS / 4));
    end = whole(Math.min(body.length, start + EXCERPT_CHARS));
  }
  const fragment = document.createDocumentFragment();
  if (start > 0) fragment.append("…");
  let at = start;
  for (const match of tokens) {
    const stop = match.index + match[0].length;
    if (match.index < start || stop > end) continue;
    fragment.append(body.slice(at, match.index), el("mark", { text: match[0] }));
    at = stop;
  }
  fragment.append(body.slice(at, end));
  if (end < body.length) fragment.append("…");
  return fragment;
}
