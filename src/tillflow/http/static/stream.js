// The live stream: server-sent events read with fetch, so the token travels in an
// Authorization header (never in a URL), and a refusal can be told apart from an outage.
//
//   start() ─► connecting ─► live ─┬─ message ─► onEvent(name, data)
//                ▲                 ├─ nothing for `stallAfter` ms ─► abort ─┐
//                └── retrying ◄────┴─ stream ended / network error ◄───────┘
//   401 / 403 ─► refused (no retry: the token will not get better by itself)

const FIRST_DELAY = 1000;
const MOST_DELAY = 15000;

/** The detail of an RFC 9457 problem document, or the status line. */
async function problemDetail(response) {
  try {
    const problem = await response.json();
    if (problem && typeof problem.detail === "string") return problem.detail;
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** Splits a text/event-stream into events: {event, data, id}. */
export class EventStreamParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "message";
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) this.onMessage(this.event, this.data.join("\n"));
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }
}

/**
 * Follows `url` with `token` until stop(). Callbacks:
 *   onEvent(name, data)      a decoded JSON message
 *   onState(state, details)  "connecting" | "live" | "retrying" | "refused"
 *     live: {serverDate}     the response's Date header (ms), to correct clock skew
 *     retrying: {reason, delay}
 *     refused: {status, detail}
 */
export class LiveStream {
  constructor({ url, token, onEvent, onState, stallAfter = 5000 }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.stallAfter = stallAfter;
    this.delay = FIRST_DELAY;
    this.stopped = true;
    this.controller = null;
    this.retryTimer = null;
    this.stallTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stallTimer);
    if (this.controller) this.controller.abort();
  }

  retry(reason) {
    clearTimeout(this.stallTimer);
    if (this.stopped) return;
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, MOST_DELAY);
    this.onState("retrying", { reason, delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  watch() {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stalled = true;
      if (this.controller) this.controller.abort();
    }, this.stallAfter);
  }

  async connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    this.stalled = false;
    this.onState("connecting", {});
    let response;
    try {
      response = await fetch(this.url, {
        headers: { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream" },
        cache: "no-store",
        signal: controller.signal,
      });
    } catch {
      this.retry("the server cannot be reached");
      return;
    }
    if (response.status === 401 || response.status === 403) {
      const detail = await problemDetail(response);
      this.stop();
      this.onState("refused", { status: response.status, detail });
      return;
    }
    if (!response.ok || !response.body) {
      this.retry(`the server answered ${await problemDetail(response)}`);
      return;
    }
    const serverDate = Date.parse(response.headers.get("date") || "");
    this.onState("live", { serverDate: Number.isNaN(serverDate) ? null : serverDate });
    let reason = "the stream ended";
    const parser = new EventStreamParser((name, data) => {
      this.delay = FIRST_DELAY;
      if (name === "shutdown") {
        reason = "the server is restarting";
        return;
      }
      let decoded;
      try {
        decoded = JSON.parse(data);
      } catch {
        return;
      }
      this.onEvent(name, decoded);
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    this.watch();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.watch();
        parser.push(value);
      }
    } catch {
      reason = this.stalled ? "no news from the server for a while" : "the connection dropped";
    }
    this.retry(reason);
  }
}
