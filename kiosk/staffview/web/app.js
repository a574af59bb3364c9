// The staff view's page: sign in, then the live alert list over server-sent events (the
// browser's EventSource reconnects by itself), the pickup queue, today's numbers and the
// device's health. Every string from the server is set as text, never as HTML.
"use strict";

const KINDS = {
  "call-staff": "A shopper asks for help",
  "pickup": "Pickup waiting",
  "order-ready": "Order ready, shopper waiting",
  "appointment": "Appointment arrived",
  "beacon-battery": "Beacon battery low",
  "beacon-silent": "Beacon silent",
  "device-down": "Device problem",
  "outbox-filling": "Event buffer filling",
};
const TODAY = [["checkins", "Check-ins"], ["taps", "Taps"], ["scans", "Scans"], ["views", "Views"]];
const $ = (id) => document.getElementById(id);
const state = { csrf: "", who: "", alerts: [], queue: [], skew: 0, stream: null, seen: new Set(),
                audio: null, first: true, refused: "" };
window.staffView = { shown: {}, streams: 0, rings: 0 };  // for tests and benchmarks

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function mmss(s) {
  s = Math.max(0, Math.floor(s));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function now() { return Date.now() / 1000 + state.skew; }

async function call(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method === "POST") {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = state.csrf;
    opts.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { signedOut(); throw new Error((await r.text()).trim()); }
  if (!r.ok) throw new Error((await r.text()).trim() || `error ${r.status}`);
  return r.json();
}

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

// --- signing in --------------------------------------------------------------------------

function signedOut() {
  state.csrf = ""; state.who = "";
  if (state.stream) { state.stream.close(); state.stream = null; }
  $("work").hidden = true; $("signin").hidden = false; $("logout").hidden = true;
  $("agent").hidden = true; banner("");
  $("who").textContent = "";
}

function signedIn(s) {
  state.csrf = s.csrf; state.who = s.who;
  $("who").textContent = s.who;
  $("signin").hidden = true; $("work").hidden = false; $("logout").hidden = false;
  $("sound").hidden = !!(state.audio && state.audio.state === "running");
  openStream();
  refresh();
}

async function signIn(body) {
  $("signin-problem").textContent = "";
  unlockAudio();  // the tap that signs in may start sound on a phone
  try {
    const r = await fetch("/api/login", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error((await r.text()).trim());
    $("pin").value = ""; $("token").value = "";
    signedIn(await r.json());
  } catch (e) {
    $("signin-problem").textContent = e.message;
  }
}

// --- sound -------------------------------------------------------------------------------

function unlockAudio() {
  try {
    if (!state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
    if (state.audio.state === "suspended") state.audio.resume();
  } catch (e) { /* no sound on this device: the list still shows it */ }
  $("sound").hidden = true;
}

function ring(level) {
  window.staffView.rings += 1;
  const loud = Math.min(1, 0.25 + 0.25 * (level || 0));
  try {
    const ctx = state.audio;
    if (ctx && ctx.state === "running") {
      for (let i = 0; i <= Math.min(3, level || 0); i++) {
        const t = ctx.currentTime + i * 0.35;
        const osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = 880; osc.connect(gain); gain.connect(ctx.destination);
        gain.gain.setValueAtTime(loud, t);
        gain.gain.exponentialRampToValueAtTime(0.001, t + 0.3);
        osc.start(t); osc.stop(t + 0.3);
      }
    }
  } catch (e) { /* sound is a help, not a must */ }
  if (navigator.vibrate) navigator.vibrate(level ? [300, 100, 300, 100, 300] : [200, 100, 200]);
}

// --- the live stream ---------------------------------------------------------------------

function openStream() {
  if (state.stream) state.stream.close();
  const es = new EventSource("/api/events");
  state.stream = es;
  es.onopen = () => { window.staffView.streams += 1; };
  es.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "hello" || msg.type === "alerts") {
      if (msg.now) state.skew = msg.now - Date.now() / 1000;
      showAlerts(msg.alerts || [], msg.open || 0, msg.type === "alerts" && msg.ring);
      if (msg.agent) agent(msg.agent.up, "", msg.agent.refused);
    } else if (msg.type === "agent") {
      agent(msg.up, msg.reason, msg.refused);
      if (msg.up) refresh();
    } else if (msg.type === "queue") {
      refresh();
    } else if (msg.type === "bye") {
      es.close(); setTimeout(openStream, 500);
    }
  };
  es.onerror = () => {
    // a refused stream (401: signed out or expired) is not retried by the browser
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(() => call("GET", "/api/session").then(openStream, () => {}), 2000);
    }
  };
}

function agent(up, reason, refused) {
  if (refused !== undefined) state.refused = refused;
  $("agent").hidden = !state.csrf;  // said to signed-in staff only
  $("agent").className = "dot " + (up && !state.refused ? "up" : "down");
  $("agent").textContent = !up ? "agent away" : state.refused ? "agent refuses" : "agent";
  banner(!state.csrf ? "" :
         !up ? "The device's agent is not answering: alerts may be late. Check the device." :
         state.refused ? "The device's agent does not let this view list alerts (its " +
                         "bus_token), so none show here. Ask whoever set up the device." : "");
}

// --- alerts ------------------------------------------------------------------------------

function showAlerts(alerts, open, ringing) {
  state.alerts = alerts;
  let fresh = false, level = 0;
  for (const a of alerts) {
    if (!state.seen.has(a.id)) {
      state.seen.add(a.id);
      if (a.state === "open" && !state.first) fresh = true;
      window.staffView.shown[a.id] = Date.now();
    }
    if (a.state === "open") level = Math.max(level, a.level || 0);
  }
  state.first = false;
  if (fresh || ringing) ring(level);
  $("open-count").textContent = open ? String(open) : "";
  const list = $("alerts");
  list.replaceChildren(...alerts.map(alertCard));
  $("no-alerts").hidden = alerts.length > 0;
}

function alertCard(a) {
  const li = el("li", `card ${a.state}`);
  li.dataset.id = a.id;
  li.dataset.state = a.state;
  const what = el("div", "what", KINDS[a.kind] || a.kind);
  if (a.level > 0 && a.state === "open") what.append(" ", el("span", "level", "!".repeat(a.level)));
  li.append(what);
  if (a.subject) li.append(el("div", "subject", a.subject));
  const meta = el("div", "meta");
  meta.dataset.created = a.created;
  li.append(meta);
  fillMeta(meta, a);
  const actions = el("div", "actions");
  if (a.state === "open") actions.append(button("On my way", "ack", () => act(a, "ack")));
  if (a.state !== "closed") actions.append(button("Done", "close done", () => act(a, "close")));
  if (actions.childElementCount) li.append(actions);
  return li;
}

function fillMeta(meta, a) {
  let text = `${mmss(now() - a.created)} ago`;
  if (a.state === "acknowledged") text += ` · ${a.acknowledged_by} is on the way`;
  if (a.state === "closed") text += ` · done by ${a.closed_by}`;
  meta.textContent = text;
}

function button(label, cls, onClick) {
  const b = el("button", cls, label);
  b.type = "button";
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await onClick(); } finally { b.disabled = false; }
  });
  return b;
}

async function act(a, action) {
  try {
    const r = await call("POST", `/api/alerts/${encodeURIComponent(a.id)}/${action}`);
    if (r.error) banner(r.error);
  } catch (e) { banner(e.message); }
}

// --- queue, today, device ----------------------------------------------------------------

let refreshing = null;
async function refresh() {
  if (refreshing || !state.csrf) return;
  refreshing = call("GET", "/api/overview");
  try {
    const o = await refreshing;
    if (o.queue && o.queue.now) state.skew = o.queue.now - Date.now() / 1000;
    showQueue(o.queue || {});
    showToday(o.kpis || {});
    showHealth(o.status || {});
    if (o.agent) agent(o.agent.up, o.agent.reason, o.agent.refused);
  } catch (e) { /* the banner or the sign-in says it */ }
  finally { refreshing = null; }
}

function showQueue(q) {
  const rows = Array.isArray(q.queue) ? q.queue : [];
  state.queue = rows;
  $("queue-count").textContent = q.total ? String(q.total) : "";
  $("queue").replaceChildren(...rows.map((r) => {
    const li = el("li", "card acknowledged");
    li.dataset.order = r.order_id;
    li.append(el("div", "what", `${r.order_id}  ${r.first_name || ""}`.trim()));
    const meta = el("div", "meta");
    const wait = el("span", "wait");
    wait.dataset.since = r.checked_in_at;
    meta.append("waiting ", wait, ` · ${r.status}`);
    li.append(meta);
    const actions = el("div", "actions");
    actions.append(button("Handed over", "done", async () => {
      try { await call("POST", `/api/queue/${encodeURIComponent(r.order_id)}/handover`); }
      catch (e) { banner(e.message); }
      refresh();
    }));
    li.append(actions);
    return li;
  }));
  $("no-queue").hidden = rows.length > 0;
  tick();
}

function showToday(k) {
  const s = k.summary || {};
  $("today").replaceChildren(...TODAY.map(([key, label]) => {
    const d = el("div");
    d.append(el("dt", "", label), el("dd", "", k.error ? "–" : String(Math.round(s[key] || 0))));
    return d;
  }));
}

function showHealth(h) {
  const items = h.items || [];
  if (h.error) { $("health").replaceChildren(el("li", "bad", h.error)); return; }
  $("health").replaceChildren(...items.map((i) => {
    const li = el("li");
    li.append(el("span", "", i.name), el("span", i.ok ? "" : "bad", i.state));
    return li;
  }));
}

function tick() {
  for (const w of document.querySelectorAll(".wait")) {
    const s = now() - Number(w.dataset.since);
    w.textContent = mmss(s);
    w.className = "wait " + (s < 180 ? "green" : s < 480 ? "yellow" : "red");
  }
  for (const m of document.querySelectorAll("#alerts .meta")) {
    const a = state.alerts.find((x) => String(x.created) === m.dataset.created);
    if (a) fillMeta(m, a);
  }
}

// --- start -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("pin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn({ name: $("name").value, pin: $("pin").value });
  });
  $("token-go").addEventListener("click", () => signIn({ token: $("token").value }));
  $("logout").addEventListener("click", async () => {
    try { await call("POST", "/api/logout"); } catch (e) { /* signed out either way */ }
    signedOut();
  });
  $("sound").addEventListener("click", unlockAudio);
  setInterval(tick, 1000);
  setInterval(refresh, 15000);
  fetch("/api/session", { credentials: "same-origin" }).then(async (r) => {
    if (r.ok) { $("sound").hidden = false; signedIn(await r.json()); } else signedOut();
  }, signedOut);
});
