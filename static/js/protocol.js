// The codes and limits of the chat protocol, as the server serves them with the page
// (rooms/protocol.py `for_the_client`, in <script id="chat-protocol" type="application/json">).

const served = JSON.parse(document.getElementById("chat-protocol")?.textContent || "{}");
const close = served.close || {};

export const CLOSE_ABUSE = close.abuse;
export const CLOSE_TOO_BIG = close.too_big;
export const CLOSE_SHUTDOWN = close.shutdown;
export const CLOSE_SLOW_READER = close.slow_reader;
export const CLOSE_TOO_MANY_SOCKETS = close.too_many_sockets;
export const CLOSE_REVOKED = close.revoked;
export const MAX_BODY = served.max_body_chars;
export const MAX_ATTACHMENT_BYTES = served.max_attachment_bytes;
export const ATTACHMENTS_PER_MESSAGE = served.attachments_per_message;
export const HISTORY_MAX = served.history_max;
export const TYPING_INTERVAL_MS = served.typing_interval_ms;
