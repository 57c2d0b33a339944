// Shared vocabulary of the rules screens, and the two ruleset calls the panels share.

import { gql, payloadError } from "./api.js";
import { enumValue, fmtTime } from "./dom.js";
import { ACTIVATE } from "./queries.js";

/** The stages of the active ruleset (from its transition graph), in graph order. */
const STAGE_ORDER = ["new", "triaged", "assigned", "in_progress", "waiting_on_customer", "escalated", "resolved", "closed"];

export function stagesOf(active) {
  if (!active || !active.transitions || !active.transitions.length) return STAGE_ORDER;
  const seen = [];
  for (const edge of active.transitions) {
    for (const stage of [edge.fromStage, ...edge.to].map(enumValue)) if (!seen.includes(stage)) seen.push(stage);
  }
  const rank = (stage) => (STAGE_ORDER.includes(stage) ? STAGE_ORDER.indexOf(stage) : STAGE_ORDER.length);
  return seen.sort((a, b) => rank(a) - rank(b));
}

// The actions the rules know (policy/model.py ACTIONS); `note` and `set_priority` have no GraphQL
// ActionType, so requests on existing tickets can use only the others (TICKET_ACTIONS).
export const ACTIONS = ["reply", "tag", "assign", "transition", "refund", "cancel_order", "change_shipping_address", "reship_order", "issue_discount", "close", "note", "set_priority"];
export const TICKET_ACTIONS = ACTIONS.filter((a) => a !== "note" && a !== "set_priority");
export const ACTORS = ["ai", "agent", "partner", "system"];

export async function activateVersion(version) {
  const data = await gql(ACTIVATE, { version });
  const error = payloadError(data.activateRulesetVersion);
  if (error) throw error;
  return data.activateRulesetVersion.rulesetVersion;
}

export function when(iso) {
  return fmtTime(iso);
}
