// The GraphQL client: one POST per operation to /graphql with the tab's API key.

const KEY_STORAGE = "bookbag.apiKey";

export function endpoint() {
  return new URL("/graphql", window.location.href).toString();
}

export function getKey() {
  return window.sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  if (key) window.sessionStorage.setItem(KEY_STORAGE, key);
  else window.sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(message, { status = 0, codes = [], errors = [] } = {}) {
    super(message);
    this.status = status;
    this.codes = codes;
    this.errors = errors;
  }

  get unauthenticated() {
    return this.status === 401 || this.codes.includes("UNAUTHENTICATED");
  }
}

/** Run one operation; resolves to `data`, rejects with ApiError on transport or top-level GraphQL errors. */
export async function gql(query, variables = {}, { key = getKey() } = {}) {
  let response;
  try {
    response = await fetch(endpoint(), {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        ...(key ? { Authorization: `Bearer ${key}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the server (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without JSON`, { status: response.status });
  }
  const errors = (body && body.errors) || [];
  if (errors.length || !response.ok) {
    const codes = errors.map((e) => (e.extensions && e.extensions.code) || "").filter(Boolean);
    const message = errors.map((e) => e.message).join("; ") || `HTTP ${response.status}`;
    throw new ApiError(message, { status: response.status, codes, errors });
  }
  return body.data;
}

/** Mutation payloads carry expected failures in `errors { code message field }`; turn them into one. */
export function payloadError(payload) {
  if (!payload || !payload.errors || !payload.errors.length) return null;
  return new ApiError(payload.errors.map((e) => e.message).join("; "), {
    codes: payload.errors.map((e) => e.code),
    errors: payload.errors,
  });
}
