// The demo page: one @switchboard/client connection as the chosen user, what it receives,
// the edges and presence of a few users, and a form that sends through the push API.
import { createClient } from '/switchboard-client.js';

const $ = (id) => document.getElementById(id);
const config = await fetch('/config').then((r) => r.json());

/** A DOM element with attributes and children (strings become text: no HTML from data). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
/** A duration for people: seconds below 90 s, then minutes, then hours. */
const duration = (ms) =>
  ms < 90_000
    ? `${Math.round(ms / 1000)} s`
    : ms < 5_400_000
      ? `${Math.round(ms / 60_000)} min`
      : `${(ms / 3_600_000).toFixed(1)} h`;
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });

// ── connection ─────────────────────────────────────────────────────────────────────────

let client = null;
let edges = config.edges.map((url) => ({ url, nodeId: null, status: 'unknown' }));
const token = { expiresAt: null, refreshes: 0 };
/** For tests and curious people: what this page saw. */
const demo = {
  received: [],
  states: [],
  get state() {
    return client?.state ?? 'disconnected';
  },
  get url() {
    return client?.url;
  },
};
window.demo = demo;

function active() {
  return client && client.state !== 'disconnected' && client.state !== 'failed';
}

function connect() {
  const userId = $('user').value.trim();
  if (!userId) return;
  const ttlSeconds = $('short-tokens').checked ? 20 : 3_600;
  // Start at a random edge; after a lost connection the client tries the next one.
  const start = Math.floor(Math.random() * config.edges.length);
  const urls = [...config.edges.slice(start), ...config.edges.slice(0, start)];
  token.expiresAt = null;
  token.refreshes = 0;
  let latestExpiry = null;
  client = createClient({
    url: urls,
    autoAck: false,
    reconnect: { minDelayMs: 250, maxDelayMs: 5_000 },
    getToken: async () => {
      const res = await fetch('/token', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId, ttlSeconds }),
      });
      if (!res.ok) throw new Error(`token endpoint: HTTP ${res.status}`);
      const body = await res.json();
      latestExpiry = body.expiresAt;
      return body.token;
    },
  });
  client.onState((change) => {
    demo.states.push(change);
    if (change.state === 'connected') token.expiresAt = latestExpiry;
    setDetail(describe(change));
    renderState(change);
  });
  client.onRefresh((outcome) => {
    if (outcome.ok) {
      token.refreshes++;
      token.expiresAt = outcome.expiresAt;
    }
    setDetail(outcome.ok ? 'token refreshed' : `token refresh failed: ${outcome.error}`);
    renderToken();
  });
  client.onAny(onMessage);
  if ($('send-to').value.trim() === '' || $('send-to').dataset.follow !== 'no') {
    $('send-to').value = userId;
    renderCurl();
  }
  renderState({ state: client.state });
  refreshPresence();
}

function disconnect() {
  client?.close();
  client = null;
  setDetail('disconnected');
  renderState({ state: 'disconnected' });
}

function edgeName(url) {
  const e = edges.find((x) => x.url === url);
  return e?.nodeId ?? url;
}

function setDetail(text) {
  $('detail').textContent = `${clock(Date.now())}  ${text}`;
}

/** One line on what the client just did. */
function describe(change) {
  if (change.delayMs !== undefined)
    return `${change.reason ?? 'retry'}: attempt ${change.attempt} in ${seconds(change.delayMs)} → ${edgeName(change.url)}`;
  if (change.state === 'connected') return `connected to ${edgeName(change.url)}`;
  if (change.state === 'connecting') return `connecting to ${edgeName(change.url)}`;
  if (change.state === 'failed') return `gave up: ${change.reason}`;
  return change.reason ?? change.state;
}

function renderState(change) {
  const state = change.state;
  const pill = $('state');
  pill.textContent = state;
  pill.dataset.state = state;
  const edge = $('edge');
  const url = client?.url;
  edge.dataset.url = url ?? '';
  edge.replaceChildren(
    url
      ? h('span', {}, h('strong', {}, edgeName(url)), '  ', h('span', { class: 'mono' }, url))
      : '–',
  );
  const button = $('connect');
  button.textContent = active() ? 'Disconnect' : 'Connect';
  button.classList.toggle('secondary', Boolean(active()));
  $('user').disabled = Boolean(active());
  $('short-tokens').disabled = Boolean(active());
  renderToken();
  renderEdges();
}

function renderToken() {
  const el = $('token');
  if (client?.state !== 'connected' || !token.expiresAt) {
    el.textContent = '–';
    return;
  }
  const left = token.expiresAt - Date.now();
  const refreshed = token.refreshes ? ` · refreshed ${token.refreshes}×` : '';
  el.textContent = `expires in ${duration(Math.max(0, left))} (${clock(token.expiresAt)})${refreshed}`;
}

$('connect-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (active()) disconnect();
  else connect();
});

// ── received messages ──────────────────────────────────────────────────────────────────

function onMessage(event, data, meta, ack) {
  const now = Date.now();
  let acked = '—';
  if (ack.requested) {
    if ($('do-ack').checked) {
      ack();
      acked = 'acked';
    } else acked = 'not acked';
  }
  const entry = { event, data, meta, latencyMs: now - meta.sentAt, ack: acked, at: now };
  demo.received.push(entry);
  const tag = acked === 'acked' ? 'tag ok' : acked === 'not acked' ? 'tag warn' : 'tag';
  const row = h(
    'tr',
    { class: 'fresh', 'data-id': meta.id },
    h('td', {}, clock(now)),
    h('td', {}, h('strong', {}, event)),
    h('td', { class: 'id' }, meta.id),
    h('td', { class: 'num' }, `${entry.latencyMs} ms`),
    h('td', {}, h('span', { class: tag }, acked)),
    h('td', { class: 'data' }, JSON.stringify(data)),
  );
  const body = $('messages').tBodies[0];
  body.prepend(row);
  while (body.rows.length > 200) body.deleteRow(-1);
  $('count').textContent = String(demo.received.length);
  $('messages-empty').hidden = true;
}

// ── sending ────────────────────────────────────────────────────────────────────────────

function sendBody() {
  const toText = $('send-to').value.trim();
  const to = toText.includes(',')
    ? toText
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : toText;
  const body = { to, event: $('send-event').value.trim() };
  const raw = $('send-data').value.trim();
  if (raw) body.data = JSON.parse(raw);
  if ($('send-ack').checked) {
    body.ack = true;
    body.ackTimeoutMs = Number($('send-timeout').value) || 5_000;
  }
  return body;
}

const shellQuote = (s) => `'${s.replaceAll("'", "'\\''")}'`;

function renderCurl() {
  let json;
  try {
    json = JSON.stringify(sendBody());
  } catch {
    json = '…data is not valid JSON…';
  }
  $('curl').textContent = [
    `curl -s -X POST ${config.pushApiUrl}/v1/messages \\`,
    `  -H ${shellQuote(`authorization: Bearer ${config.apiKey}`)} \\`,
    `  -H 'content-type: application/json' \\`,
    `  -d ${shellQuote(json)}`,
  ].join('\n');
}

for (const id of ['send-to', 'send-event', 'send-data', 'send-ack', 'send-timeout'])
  $(id).addEventListener('input', renderCurl);
$('send-to').addEventListener('input', () => {
  $('send-to').dataset.follow = 'no';
});
$('copy-curl').addEventListener('click', async () => {
  await navigator.clipboard?.writeText($('curl').textContent);
  $('copy-curl').textContent = 'copied';
  setTimeout(() => {
    $('copy-curl').textContent = 'copy';
  }, 1_200);
});

$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('response');
  let body;
  try {
    body = sendBody();
  } catch (err) {
    out.dataset.status = 'error';
    out.textContent = `Data is not valid JSON: ${err.message}`;
    return;
  }
  out.dataset.status = '';
  out.textContent = body.ack ? 'Sending… (waiting for the ack)' : 'Sending…';
  $('send').disabled = true;
  try {
    const res = await fetch('/send', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then((r) => r.json());
    const results = res.body?.results ?? [];
    out.dataset.status =
      res.status !== 200 ? 'error' : results.every((r) => r.status === 'delivered') ? 'ok' : 'warn';
    out.textContent = `HTTP ${res.status} · ${res.ms} ms\n${JSON.stringify(res.body, null, 2)}`;
  } catch (err) {
    out.dataset.status = 'error';
    out.textContent = `Request failed: ${err.message}`;
  } finally {
    $('send').disabled = false;
  }
});

// ── edges and presence ─────────────────────────────────────────────────────────────────

function renderEdges() {
  const url = client?.url;
  $('edges').replaceChildren(
    ...edges.map((e) => {
      const dot = e.status === 'ready' ? 'dot on' : e.status === 'draining' ? 'dot warn' : 'dot';
      return h(
        'li',
        { class: e.url === url ? 'you' : '', 'data-url': e.url },
        h('span', { class: dot }),
        h(
          'div',
          {},
          h('div', { class: 'name' }, e.nodeId ?? 'edge'),
          h('div', { class: 'sub mono' }, e.url),
        ),
        h(
          'span',
          { class: 'right' },
          e.url === url ? h('span', { class: 'tag ok' }, 'you are here') : null,
          ' ',
          h('span', { class: e.status === 'ready' ? 'tag' : 'tag warn' }, e.status),
        ),
      );
    }),
  );
}

async function refreshEdges() {
  try {
    edges = (await fetch('/edges').then((r) => r.json())).edges;
  } catch {}
  renderEdges();
  renderState({ state: client?.state ?? 'disconnected' });
}

function presenceUsers() {
  const me = $('user').value.trim();
  const listed = $('presence-users')
    .value.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return [...new Set([me, ...listed].filter(Boolean))].slice(0, 12);
}

async function refreshPresence() {
  const users = presenceUsers();
  if (users.length === 0) return $('presence').replaceChildren();
  let views;
  try {
    views = (
      await fetch(`/presence?users=${encodeURIComponent(users.join(','))}`).then((r) => r.json())
    ).users;
  } catch {
    return;
  }
  $('presence').replaceChildren(
    ...views.map((v) => {
      const nodes = (v.nodes ?? []).map((n) => n.nodeId).join(', ');
      const sub = v.error
        ? v.error
        : v.online
          ? `${v.connections} connection${v.connections === 1 ? '' : 's'} on ${nodes}`
          : v.lastSeen
            ? `offline · last seen ${clock(v.lastSeen)}`
            : 'offline';
      return h(
        'li',
        { 'data-user': v.userId },
        h('span', { class: v.online ? 'dot on' : 'dot' }),
        h('div', {}, h('div', { class: 'name' }, v.userId), h('div', { class: 'sub' }, sub)),
        h(
          'span',
          { class: 'right' },
          h('span', { class: v.online ? 'tag ok' : 'tag' }, v.online ? 'online' : 'offline'),
        ),
      );
    }),
  );
}

$('presence-users').addEventListener('change', refreshPresence);
$('user').addEventListener('change', () => {
  if ($('send-to').dataset.follow !== 'no') $('send-to').value = $('user').value.trim();
  renderCurl();
  refreshPresence();
});

renderCurl();
renderState({ state: 'disconnected' });
await refreshEdges();
await refreshPresence();
setInterval(refreshEdges, 2_000);
setInterval(refreshPresence, 2_000);
setInterval(renderToken, 1_000);
