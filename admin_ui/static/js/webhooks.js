// Webhooks (admin only): the merchant's endpoints — add one (its signing secret is shown once), enable or
// disable, rotate the secret, send a test ping — and each endpoint's delivery log with redelivery.

import { gql, payloadError } from "./api.js";
import { fmtTime, h, replace } from "./dom.js";

const ENDPOINT_FIELDS = `id url description eventTypes enabled disabledReason disabledAt failingSince
  secretRotatedAt createdAt`;
const LOAD = `{ webhookEventTypes webhookEndpoints { ${ENDPOINT_FIELDS} } }`;
const CREATE = `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
  errors { code message field } secret endpoint { id } } }`;
const UPDATE = `mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) {
  errors { code message field } endpoint { id } } }`;
const ROTATE = `mutation($id: ID!) { rotateWebhookSecret(id: $id) { errors { code message } secret } }`;
const PING = `mutation($id: ID!) { pingWebhookEndpoint(id: $id) {
  errors { code message } attempt { ok statusCode latencyMs error } } }`;
const DELIVERIES = `query($e: ID) { webhookDeliveries(endpointId: $e, first: 50) {
  id eventId eventType ticketId status attempts nextAttemptAt lastStatusCode lastError createdAt deliveredAt
  attemptLog { attempt ok statusCode latencyMs error startedAt } } }`;
const REDELIVER = `mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { errors { code message } delivery { id } } }`;

export function mountWebhooks(container, { onAuthError }) {
  const notice = h("div", { testid: "webhook-notice" });
  const list = h("div", { testid: "webhook-endpoints" }, h("p", { class: "muted" }, "loading…"));
  const form = h("div");
  container.append(
    h("div", { class: "toolbar" }, h("h2", {}, "Webhooks"), h("span", { class: "spacer" })),
    h("p", { class: "small muted" },
      "Partner systems receive this store's events as signed HTTP POSTs (Standard Webhooks: webhook-id, ",
      "webhook-timestamp, webhook-signature). Failed deliveries are retried for about a day."),
    notice,
    form,
    list,
  );
  let disposed = false;
  const openLogs = new Set();

  function fail(err) {
    if (err.unauthenticated) onAuthError(err);
    else replace(notice, h("p", { class: "error", role: "alert" }, err.message));
  }

  async function run(mutation, variables, name) {
    const data = await gql(mutation, variables);
    const problem = payloadError(data[name]);
    if (problem) throw problem;
    return data[name];
  }

  async function load() {
    try {
      const data = await gql(LOAD);
      if (disposed) return;
      replace(form, renderForm(data.webhookEventTypes));
      replace(list, ...(data.webhookEndpoints.length
        ? data.webhookEndpoints.map(renderEndpoint)
        : [h("p", { class: "muted", testid: "webhook-none" }, "No endpoints yet.")]));
      for (const id of openLogs) loadLog(id);
    } catch (err) {
      fail(err);
    }
  }

  function showSecret(secret, what) {
    replace(notice, h("div", { class: "card", testid: "webhook-secret-box" },
      h("p", {}, `${what} Copy the signing secret now: it is not shown again.`),
      h("code", { class: "mono", testid: "webhook-secret" }, secret)));
  }

  function renderForm(types) {
    const url = h("input", { type: "url", placeholder: "https://partner.example.com/bookbag", required: true,
      testid: "webhook-url", "aria-label": "Endpoint URL", size: 50 });
    const description = h("input", { type: "text", placeholder: "description (optional)", testid: "webhook-description",
      "aria-label": "Description" });
    const boxes = types.map((type) => h("label", { class: "small" },
      h("input", { type: "checkbox", value: type, checked: true, dataset: { eventType: type } }), ` ${type} `));
    const error = h("p", { class: "error", testid: "webhook-form-error" });
    const submit = async (event) => {
      event.preventDefault();
      replace(error);
      const eventTypes = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
      try {
        const payload = await run(CREATE, { input: { url: url.value.trim(), eventTypes, description: description.value } },
          "createWebhookEndpoint");
        showSecret(payload.secret, "Endpoint added.");
        url.value = "";
        description.value = "";
        load();
      } catch (err) {
        if (err.unauthenticated) onAuthError(err);
        else replace(error, err.message);
      }
    };
    return h("form", { class: "card", onsubmit: submit, testid: "webhook-form" },
      h("h3", {}, "Add an endpoint"),
      h("div", {}, url, " ", description),
      h("fieldset", {}, h("legend", { class: "small" }, "Event types"), boxes),
      h("button", { type: "submit", testid: "webhook-add" }, "Add endpoint"),
      error);
  }

  function renderEndpoint(e) {
    const status = e.enabled
      ? h("span", { class: "badge", testid: "webhook-status" }, e.failingSince ? `failing since ${fmtTime(e.failingSince)}` : "enabled")
      : h("span", { class: "badge warn", testid: "webhook-status" }, "disabled");
    const log = h("div", { testid: "webhook-log" });
    const result = h("span", { class: "small", testid: "webhook-ping-result" });
    const act = (fn) => async () => {
      try {
        await fn();
      } catch (err) {
        fail(err);
      }
    };
    const toggle = act(async () => {
      await run(UPDATE, { input: { id: e.id, enabled: !e.enabled } }, "updateWebhookEndpoint");
      load();
    });
    const rotate = act(async () => {
      const payload = await run(ROTATE, { id: e.id }, "rotateWebhookSecret");
      showSecret(payload.secret, "Secret rotated; the previous one keeps signing beside it for 24 hours.");
      load();
    });
    const ping = act(async () => {
      replace(result, "sending…");
      const { attempt } = await run(PING, { id: e.id }, "pingWebhookEndpoint");
      replace(result, attempt.ok
        ? `ping delivered: HTTP ${attempt.statusCode} in ${Math.round(attempt.latencyMs)} ms`
        : `ping failed: ${attempt.error}`);
    });
    const showLog = () => {
      if (openLogs.has(e.id)) {
        openLogs.delete(e.id);
        replace(log);
      } else {
        openLogs.add(e.id);
        loadLog(e.id, log);
      }
    };
    return h("section", { class: "card", dataset: { endpointId: e.id }, testid: "webhook-endpoint" },
      h("div", { class: "toolbar" }, h("strong", { class: "mono" }, e.url), " ", status, h("span", { class: "spacer" }),
        h("button", { onclick: toggle, testid: "webhook-toggle" }, e.enabled ? "Disable" : "Enable"),
        h("button", { onclick: rotate, testid: "webhook-rotate" }, "Rotate secret"),
        h("button", { onclick: ping, testid: "webhook-ping" }, "Send test ping"),
        h("button", { onclick: showLog, testid: "webhook-show-log", "aria-expanded": String(openLogs.has(e.id)) }, "Deliveries")),
      e.description ? h("p", { class: "small" }, e.description) : null,
      e.disabledReason ? h("p", { class: "error small", testid: "webhook-disabled-reason" }, e.disabledReason) : null,
      h("p", { class: "small muted" }, `Events: ${e.eventTypes.join(", ")}`,
        e.secretRotatedAt ? ` · secret rotated ${fmtTime(e.secretRotatedAt)}` : ""),
      result,
      log);
  }

  async function loadLog(endpointId, into = null) {
    const target = into || list.querySelector(`[data-endpoint-id="${endpointId}"] [data-testid="webhook-log"]`);
    if (!target) return;
    try {
      const data = await gql(DELIVERIES, { e: endpointId });
      if (disposed) return;
      replace(target, renderLog(data.webhookDeliveries, endpointId));
    } catch (err) {
      fail(err);
    }
  }

  function renderLog(deliveries, endpointId) {
    if (!deliveries.length) return h("p", { class: "muted small" }, "No deliveries yet.");
    const redeliver = (id) => async () => {
      try {
        await run(REDELIVER, { id }, "redeliverWebhook");
        loadLog(endpointId);
      } catch (err) {
        fail(err);
      }
    };
    const rows = deliveries.map((d) => {
      const last = d.attemptLog[0];
      return h("tr", { testid: "webhook-delivery", dataset: { status: d.status } },
        h("td", {}, fmtTime(d.createdAt)),
        h("td", { class: "mono" }, d.eventType),
        h("td", {}, d.ticketId ? h("a", { href: `#/ticket/${encodeURIComponent(d.ticketId)}` }, "ticket") : "–"),
        h("td", {}, d.status === "pending" && d.nextAttemptAt ? `pending (next ${fmtTime(d.nextAttemptAt)})` : d.status),
        h("td", {}, String(d.attempts)),
        h("td", {}, d.lastStatusCode === null ? "–" : String(d.lastStatusCode)),
        h("td", {}, last && last.latencyMs !== null ? `${Math.round(last.latencyMs)} ms` : "–"),
        h("td", { class: "small" }, d.lastError || ""),
        h("td", {}, d.status === "pending" ? "" : h("button", { onclick: redeliver(d.id), testid: "webhook-redeliver" }, "Redeliver")));
    });
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ...["When", "Event", "Ticket", "Status", "Attempts", "HTTP", "Latency", "Error", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows));
  }

  load();
  return () => {
    disposed = true;
  };
}
