// Talking to Cellar: GraphQL over HTTP (Bearer token) and subscriptions over the websocket
// (graphql-ws, token in connectionParams). The token lives in this tab's sessionStorage.

const KEY = 'cellar.token';
let wsClient = null;

/** The signed-in token, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Remembers (or, with null, forgets) the token; drops the websocket either way. */
export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
  if (wsClient) {
    wsClient.dispose();
    wsClient = null;
  }
}

/** An error the API answered with: `code` is its extensions.code (FORBIDDEN, ...). */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code || 'INTERNAL';
  }
}

function firstError(errors) {
  const e = errors[0];
  return new ApiError(e.message, e.extensions && e.extensions.code);
}

/** Runs a query or mutation; resolves to `data`, rejects with an ApiError. */
export async function gql(query, variables = {}) {
  let resp;
  try {
    resp = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token() || ''}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError(`the API is unreachable (${e.message})`, 'UNREACHABLE');
  }
  let body;
  try {
    body = await resp.json();
  } catch {
    throw new ApiError(`the API answered ${resp.status} without JSON`, 'INTERNAL');
  }
  if (body.errors && body.errors.length) throw firstError(body.errors);
  return body.data;
}

function client() {
  if (!wsClient) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
    wsClient = window.graphqlWs.createClient({
      url,
      connectionParams: () => ({ token: token() }),
      lazy: true,
      retryAttempts: 20,
    });
  }
  return wsClient;
}

/**
 * Subscribes; `onData(data)` for each item, `onEnd(error?)` once at the end. Returns a
 * function that unsubscribes.
 */
export function subscribe(query, variables, onData, onEnd = () => {}) {
  return client().subscribe(
    { query, variables },
    {
      next: (msg) => (msg.errors ? onEnd(firstError(msg.errors)) : onData(msg.data)),
      error: (e) => onEnd(e instanceof Error ? e : new ApiError(describeClose(e), 'WEBSOCKET')),
      complete: () => onEnd(),
    },
  );
}

function describeClose(e) {
  if (Array.isArray(e) && e.length) return e[0].message;
  if (e && typeof e.code === 'number') return `live updates closed (${e.code} ${e.reason || ''})`;
  return 'live updates failed';
}
