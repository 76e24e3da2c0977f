// Safe DOM building: text goes in as text, never as HTML. Nothing here sets `innerHTML`,
// inline handlers or style attributes, so the site's strict Content-Security-Policy holds.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an element: `el("a", {className: "x", href: "/"}, "text", child…)`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") || name === "style") throw new Error(`refusing ${name}`);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// 20×20 outline icons drawn by the script (the templates carry their own inline SVG).
const ICONS = {
  hash: "M7.5 3 6 17M14 3l-1.5 14M3.5 7.5h14M2.5 12.5h14",
  lock: "M5.5 9V6.5a4.5 4.5 0 0 1 9 0V9M4.5 9h11v8h-11z",
  close: "M5 5l10 10M15 5 5 15",
  edit: "M4 16h3l8.5-8.5-3-3L4 13v3Zm7-10 3 3",
  trash: "M4.5 6h11M8 6V4h4v2M6 6l.8 10.5h6.4L14 6",
  more: "M5 10h.01M10 10h.01M15 10h.01",
  reply: "M8 5 3.5 9.5 8 14M4 9.5h7a5 5 0 0 1 5 5V16",
  smile: "M10 17a7 7 0 1 0 0-14 7 7 0 0 0 0 14ZM7 11.5q3 3 6 0M7.5 8h.01M12.5 8h.01",
  paperclip: "m15 9.5-5.6 5.6a3.5 3.5 0 0 1-5-5l6.3-6.3a2.3 2.3 0 0 1 3.3 3.3l-6.2 6.2a1.2 1.2 0 0 1-1.7-1.7L11.7 6",
  file: "M5 2.5h6.5l3.5 3.5v11.5H5zM11.5 2.5V6H15M7.5 10h5M7.5 13h5",
};

/** An inline SVG icon, hidden from screen readers (its button carries the label). */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}

// Links: only http(s) URLs, found in plain text and rebuilt as elements with textContent.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** The text as a fragment of text nodes and <a> elements; no markup is ever parsed. */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let raw = match[0];
    const trail = raw.match(TRAILING);
    // Keep a closing parenthesis that belongs to the URL, as in wiki links.
    if (trail && !(trail[0] === ")" && raw.includes("("))) raw = raw.slice(0, -trail[0].length);
    const url = safeUrl(raw);
    if (!url) continue;
    fragment.append(text.slice(last, match.index));
    fragment.append(
      el("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", text: raw }),
    );
    last = match.index + raw.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

// Times: shown in the reader's own time zone and language.
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  month: "long",
  day: "numeric",
});
const dayYearFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "long" });

export const formatTime = (date) => timeFormat.format(date);
export const formatFull = (date) => fullFormat.format(date);

export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

/** "Today", "Yesterday", "Monday, March 3", or a full date for other years. */
export function formatDay(date, now = new Date()) {
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  return date.getFullYear() === now.getFullYear()
    ? dayFormat.format(date)
    : dayYearFormat.format(date);
}

/** Reorder `parent`'s children to match `rows` ({key, version, build}), reusing unchanged ones. */
export function reconcile(parent, rows) {
  const existing = new Map();
  for (const child of parent.children) existing.set(child.dataset.key, child);
  const wanted = rows.map((row) => {
    let node = existing.get(row.key);
    if (!node || node.dataset.version !== row.version) {
      node = row.build();
      node.dataset.key = row.key;
      node.dataset.version = row.version;
    }
    return node;
  });
  const keep = new Set(wanted);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  let previous = null;
  for (const node of wanted) {
    const slot = previous ? previous.nextElementSibling : parent.firstElementChild;
    if (node !== slot) parent.insertBefore(node, slot);
    previous = node;
  }
}

/** A random `ref` (hex, 32 characters); works outside secure contexts too. */
export function newRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
