// The approval inbox's size for this key's role, kept live: one `pendingActionUpdates` subscription per tab
// (each update carries the new count), shared by the navigation badge and the Approvals page.

import { gql } from "./api.js";
import { PENDING_COUNT, PENDING_UPDATES } from "./queries.js";

export class InboxWatcher {
  constructor(client) {
    this.client = client;
    this.count = null;
    this.listeners = new Set();
    this.stop = null;
  }

  /** listener({count, update}) on every change (update is null for the first count). Returns unsubscribe. */
  listen(listener) {
    this.listeners.add(listener);
    if (this.count !== null) listener({ count: this.count, update: null });
    return () => this.listeners.delete(listener);
  }

  start() {
    this.stop = this.client.subscribe({ query: PENDING_UPDATES }, {
      next: (payload) => {
        const update = payload.data && payload.data.pendingActionUpdates;
        if (update) this._set(update.pendingCount, update);
      },
      error: () => {},
      complete: () => {},
    });
    // After the subscription is asked for, so a request arriving in between is counted either way; and again
    // after every reconnect (what happened while the socket was down arrives as no update).
    this.refresh();
    this.stopStatus = this.client.onStatus((status) => {
      if (status.state === "connected" && this.count !== null) this.refresh();
    });
  }

  async refresh() {
    try {
      const data = await gql(PENDING_COUNT);
      this._set(data.pendingActions.totalCount, null);
    } catch {
      // The badge stays as it was; the page shows its own errors.
    }
  }

  dispose() {
    if (this.stop) this.stop();
    if (this.stopStatus) this.stopStatus();
    this.stop = null;
    this.stopStatus = null;
    this.listeners.clear();
  }

  _set(count, update) {
    this.count = count;
    for (const listener of this.listeners) listener({ count, update });
  }
}
