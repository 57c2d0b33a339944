// A small graphql-transport-ws client (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md):
// connection_init (with the API key) → connection_ack, then subscribe/next/error/complete per operation id,
// ping/pong both ways. It reconnects on its own with exponential backoff and resubscribes everything that
// was active, reporting its state through `onStatus` so the page can say when the connection dropped.

const PROTOCOL = "graphql-transport-ws";
const ACK_TIMEOUT_MS = 10_000;
const PING_EVERY_MS = 15_000;
const PONG_TIMEOUT_MS = 8_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
// Close codes after which retrying with the same key cannot help.
const FATAL_CLOSE = new Map([
  [4401, "unauthorized"],
  [4403, "forbidden"],
  [4400, "bad request"],
]);

export function websocketUrl(path = "/graphql") {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

export class SubscriptionClient {
  /**
   * @param {{url?: string, getKey: () => string | null, onStatus?: (status: object) => void}} options
   * Status objects: {state: "connecting"|"connected"|"reconnecting"|"closed"|"failed", attempt, retryInMs, reason}
   */
  constructor({ url = websocketUrl(), getKey, onStatus = () => {} }) {
    this.url = url;
    this.getKey = getKey;
    this.listeners = new Set([onStatus]);
    this.socket = null;
    this.acked = false;
    this.subs = new Map(); // id → {payload, sink}
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = false;
    this.timers = {};
    this.status = { state: "idle" };
  }

  /** Start an operation; returns a function that stops it. Sink: {next(data), error(errors), complete()}. */
  subscribe(payload, sink) {
    const id = String(this.nextId++);
    this.subs.set(id, { payload, sink });
    if (this.acked) this._send({ id, type: "subscribe", payload });
    else this._ensureSocket();
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.acked) this._send({ id, type: "complete" });
      if (!this.subs.size) this._idleClose();
    };
  }

  /** Close for good (sign-out, leaving the page). */
  dispose() {
    this.stopped = true;
    this.subs.clear();
    this._clearTimers();
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
    this._setStatus({ state: "closed" });
  }

  /** Drop the socket as if the network failed (used by the tests and the "reconnect now" button). */
  dropForTesting() {
    if (this.socket) this.socket.close(4000, "dropped by client");
  }

  reconnectNow() {
    this.attempt = 0;
    clearTimeout(this.timers.retry);
    this.timers.retry = null;
    this._ensureSocket();
  }

  /** Also tell `listener` about every status change; returns a function that stops that. */
  onStatus(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  _setStatus(status) {
    this.status = status;
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch (err) {
        console.error(err);
      }
    }
  }

  _ensureSocket() {
    if (this.stopped || this.socket || this.timers.retry) return;
    this._connect();
  }

  _connect() {
    this.timers.retry = null;
    if (!this.subs.size) {
      this._setStatus({ state: "idle" });
      return;
    }
    this.acked = false;
    this._setStatus({ state: this.attempt ? "reconnecting" : "connecting", attempt: this.attempt });
    let socket;
    try {
      socket = new WebSocket(this.url, PROTOCOL);
    } catch (err) {
      this._scheduleRetry(String(err));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      const key = this.getKey();
      this._send({ type: "connection_init", payload: key ? { Authorization: `Bearer ${key}` } : {} });
      this.timers.ack = setTimeout(() => socket.close(4408, "connection_ack timeout"), ACK_TIMEOUT_MS);
    };
    socket.onmessage = (event) => this._onMessage(socket, event);
    socket.onclose = (event) => this._onClose(socket, event);
    socket.onerror = () => {}; // onclose follows and carries what there is to know
  }

  _onMessage(socket, event) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      socket.close(4400, "invalid message");
      return;
    }
    switch (message.type) {
      case "connection_ack":
        clearTimeout(this.timers.ack);
        this.acked = true;
        this.attempt = 0;
        this._setStatus({ state: "connected" });
        for (const [id, sub] of this.subs) this._send({ id, type: "subscribe", payload: sub.payload });
        this._schedulePing();
        break;
      case "next": {
        const sub = this.subs.get(message.id);
        if (sub) sub.sink.next(message.payload);
        break;
      }
      case "error": {
        const sub = this.subs.get(message.id);
        this.subs.delete(message.id);
        if (sub && sub.sink.error) sub.sink.error(message.payload);
        break;
      }
      case "complete": {
        const sub = this.subs.get(message.id);
        this.subs.delete(message.id);
        if (sub && sub.sink.complete) sub.sink.complete();
        break;
      }
      case "ping":
        this._send({ type: "pong" });
        break;
      case "pong":
        clearTimeout(this.timers.pong);
        this._schedulePing();
        break;
      default:
        break;
    }
  }

  _onClose(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.acked = false;
    this._clearTimers();
    if (this.stopped) return;
    const fatal = FATAL_CLOSE.get(event.code);
    if (fatal) {
      this._setStatus({ state: "failed", reason: `${fatal}: ${event.reason || event.code}`, code: event.code });
      return;
    }
    if (!this.subs.size) {
      this._setStatus({ state: "idle" });
      return;
    }
    this._scheduleRetry(event.reason || `closed (${event.code})`);
  }

  _scheduleRetry(reason) {
    this.attempt += 1;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.attempt - 1));
    // Full jitter keeps many tabs from reconnecting in lockstep after a server restart.
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this._setStatus({ state: "reconnecting", attempt: this.attempt, retryInMs: delay, reason });
    this.timers.retry = setTimeout(() => this._connect(), delay);
  }

  _schedulePing() {
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => {
      if (!this.acked) return;
      this._send({ type: "ping" });
      // No pong in time: the connection is dead even if the socket has not noticed yet.
      this.timers.pong = setTimeout(() => this.socket && this.socket.close(4504, "pong timeout"), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  _idleClose() {
    this._clearTimers();
    const socket = this.socket;
    this.socket = null;
    this.acked = false;
    if (socket) socket.close(1000, "no subscriptions");
    this._setStatus({ state: "idle" });
  }

  _clearTimers() {
    for (const name of ["ack", "ping", "pong"]) clearTimeout(this.timers[name]);
    if (this.stopped) clearTimeout(this.timers.retry);
  }

  _send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}
