// Every GraphQL document the UI sends, in one place, so the contract with schema/schema.graphql is easy to check.

export const ME = `query Me { me { role actor merchant { id name slug } } }`;

const QUEUE_FIELDS = `
  version generatedAt openCount
  stages {
    stage count oldestOpenAt oldestAgeSeconds slaBreached
    oldestTicket { id subject priority }
  }
  timeInStage { fromStage toStage count meanSeconds p50Seconds p90Seconds }`;

export const QUEUE = `query Queue { queue { ${QUEUE_FIELDS} } }`;

export const QUEUE_UPDATES = `subscription QueueUpdates { queueUpdates { ${QUEUE_FIELDS} } }`;

const TICKET_ROW = `id subject stage priority category createdAt stageEnteredAt needsHuman
  sla { firstResponseDueAt resolutionDueAt breachedAt }
  team { name } assignee { name }`;

export const OLDEST_OPEN = `query OldestOpen($first: Int!) {
  oldestOpenTickets(first: $first) { ${TICKET_ROW} }
}`;

export const RECENT_TICKETS = `query RecentTickets($first: Int!) {
  tickets(first: $first) { edges { node { id subject stage priority category } } }
}`;

const DECISION = `effect matchedRules decidingRules approvers handoff explanation`;

export const TICKET_DETAIL = `query TicketDetail($id: ID!) {
  ticket(id: $id) {
    ${TICKET_ROW} body channel tags version categoryConfidence priorityConfidence routingRuleId modelVersion
    customer { email name vip lifetimeValue orderCount }
    order { id total currency financialStatus fulfillmentStatus }
    sla { firstResponseDueAt resolutionDueAt firstRespondedAt breachedAt }
    messages { id authorType body createdAt }
    actions {
      id type customType amount params actor status reason createdAt decidedAt rulesetVersion requestedBy decidedBy
      executingAt executionDeadlineAt timedOutAt completedAt completedBy externalRef outcomeMessage
      decision { ${DECISION} }
    }
  }
  auditLog(ticketId: $id) { id kind actor actorName before after rulesetVersion decision createdAt }
  ruleset { transitions { fromStage to } }
  teams { id name }
  agents { id name available teams { id } }
}`;

export const ADD_MESSAGE = `mutation Reply($input: AddMessageInput!) {
  addMessage(input: $input) { errors { code message field } message { id } }
}`;

export const ASSIGN = `mutation Assign($input: AssignTicketInput!) {
  assignTicket(input: $input) { errors { code message field } ticket { id version } }
}`;

export const TRANSITION = `mutation Move($input: TransitionTicketInput!) {
  transitionTicket(input: $input) { errors { code message field } ticket { id stage version } }
}`;

export const PREVIEW_ACTION = `query PreviewAction($input: RequestActionInput!) {
  previewAction(input: $input) { ${DECISION} }
}`;

export const REQUEST_ACTION = `mutation RequestAction($input: RequestActionInput!) {
  requestAction(input: $input) {
    errors { code message field }
    decision { ${DECISION} }
    action { id status }
  }
}`;

const PENDING_NODE = `id type customType amount params actor status createdAt handoffReason facts requestedBy
  decision { ${DECISION} }
  ticket { id subject body stage priority createdAt customer { name email } order { id total currency }
    messages { authorType body createdAt } }`;

export const PENDING_ACTIONS = `query PendingActions($first: Int) {
  pendingActions(first: $first) { totalCount edges { node { ${PENDING_NODE} } } }
}`;

export const PENDING_COUNT = `query PendingCount { pendingActions(first: 1) { totalCount } }`;

export const PENDING_UPDATES = `subscription PendingUpdates {
  pendingActionUpdates { kind actionId ticketId status pendingCount }
}`;

export const APPROVE = `mutation Approve($id: ID!) {
  approveAction(id: $id) { errors { code message field } action { id status } }
}`;

export const REJECT = `mutation Reject($id: ID!, $reason: String!) {
  rejectAction(id: $id, reason: $reason) { errors { code message field } action { id status } }
}`;

export const RULESET = `query Ruleset {
  ruleset { version name digest source message createdAt transitions { fromStage to } }
  rulesetVersions { version name digest message source createdAt active }
}`;

const PROBLEM = `code message path line col severity`;

export const VALIDATE = `mutation Validate($source: String!) {
  validateRuleset(source: $source) {
    valid
    problems { ${PROBLEM} }
    warnings { ${PROBLEM} }
    errors { code message field }
  }
}`;

export const SIMULATE = `mutation Simulate($source: String, $cases: [SimulationCaseInput!]!) {
  simulate(source: $source, cases: $cases) {
    errors { code message field }
    results {
      label facts changed routing escalations plannedEscalations
      draft { ${DECISION} trace }
      active { ${DECISION} trace }
    }
  }
}`;

export const BACKTEST = `mutation Backtest($source: String!, $limit: Int) {
  backtest(source: $source, limit: $limit) { errors { code message field } report }
}`;

export const PUBLISH = `mutation Publish($source: String!, $message: String!) {
  publishRuleset(source: $source, message: $message) {
    errors { code message field }
    problems { ${PROBLEM} }
    testFailures { name message }
    rulesetVersion { version message createdAt }
  }
}`;

export const ACTIVATE = `mutation Activate($version: Int!) {
  activateRulesetVersion(version: $version) {
    errors { code message field }
    rulesetVersion { version }
  }
}`;

export const TEST_RULESET = `mutation TestRuleset($source: String!) {
  testRuleset(source: $source) {
    passed
    results { name passed message }
    problems { ${PROBLEM} }
    errors { code message field }
  }
}`;

export const TICKET_EVENTS = `subscription TicketEvents($id: ID!) { ticketEvents(ticketId: $id) { kind at } }`;

export const TICKET_LIST = `query TicketList($filter: TicketFilter, $orderBy: TicketOrder, $first: Int, $after: String) {
  tickets(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id subject stage priority category createdAt stageEnteredAt needsHuman
      customer { email name } order { id } sla { breachedAt }
      team { name } assignee { name }
    } }
  }
}`;

export const TICKET_LIST_OPTIONS = `query TicketListOptions {
  teams { id name } agents { id name } classifierInfo { labels }
}`;

export const REPORT = `query Report($start: Date, $end: Date, $granularity: ReportGranularity!, $split: ReportSplit!) {
  report(start: $start, end: $end, granularity: $granularity, split: $split) {
    start end granularity split buckets groups { value label }
    volume { bucket group created closed reopened backlog }
    sla { bucket group firstResponseMet firstResponseMissed firstResponseAttainment resolutionMet resolutionMissed
          resolutionAttainment breaches escalations }
    durations { bucket group metric fromStage toStage decision count meanSeconds p50Seconds p90Seconds }
    trends { bucket group metric count meanSeconds p50Seconds p90Seconds }
    actions { group actor type effect status count }
    corrections { group fromCategory toCategory count }
  }
}`;
