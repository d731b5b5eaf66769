// gserverd dashboard: reads /api/v1/events (server-sent events, read with
// fetch so that the bearer token can be sent), draws the throughput chart
// by hand on a canvas and fills the functions table. The stream sends a
// "snapshot" first (and again after the page fell behind), then a "delta"
// per second with only the functions that changed: the table is patched
// row by row. No external resource.
"use strict";
(function () {
  const { $, setStatus, cell } = Dash;
  const HISTORY = 120; // points kept (one per event)
  const series = { submitted: [], completed: [], failed: [] };
  let last = null; // previous snapshot, for rates
  const auth = Dash.auth("gserverd-token");
  const headers = auth.headers;
  const stream = () => Dash.follow("/api/v1/events", auth, (name, data) => apply(name, JSON.parse(data)));

  // fnRows maps a function's name to its table row; waiting holds the rows
  // whose oldest job waits, with the wait as of the event that sent it.
  const fnRows = new Map();
  const waiting = new Map();

  function apply(name, snap) {
    const s = snap.server;
    for (const k of ["submitted", "completed", "failed", "dropped", "running", "jobs", "connections"]) {
      $("t-" + k).textContent = s[k];
    }
    if (last) {
      const dt = (snap.time - last.time) / 1000;
      if (dt > 0) {
        for (const k of Object.keys(series)) {
          series[k].push(Math.max(0, (s[k] - last.server[k]) / dt));
          if (series[k].length > HISTORY) series[k].shift();
        }
      }
    }
    last = snap;
    drawChart();
    if (name === "snapshot") {
      fnRows.clear();
      waiting.clear();
    }
    patchTable(snap.time, snap.functions || [], snap.removed || []);
    if (snap.workers) drawWorkers(snap.workers, snap.workers_total || 0);
    drawFleet(s.fleet);
  }

  // drawFleet shows the fleet of servers sharing the -q postgres table:
  // the members' leases and this member's claims (hidden without one).
  function drawFleet(f) {
    $("fleet").hidden = !f;
    if (!f) return;
    $("f-self").textContent = "member " + f.member + (f.fenced ? " — FENCED: lease not confirmed, stored jobs not served" : "");
    const ms = (f.members || []).map((m) => {
      const tr = document.createElement("tr");
      tr.dataset.member = m.id;
      cell(tr, m.id + (m.self ? " (this server)" : ""), "text");
      cell(tr, m.epoch);
      cell(tr, m.expires_in_ns > 0 ? age(m.expires_in_ns / 1e9) : "expired");
      return tr;
    });
    $("fleet-members").tBodies[0].replaceChildren(...(ms.length ? ms : [emptyRow(3, "no lease read yet")]));
    const cs = (f.claims || []).slice().reverse().map((c) => {
      const tr = document.createElement("tr");
      cell(tr, c.from, "text");
      cell(tr, c.jobs);
      cell(tr, new Date(c.at).toLocaleTimeString());
      cell(tr, age(c.expired_ns / 1e9));
      cell(tr, c.takeover_ns > 0 ? age(c.takeover_ns / 1e9) : "no job served yet");
      return tr;
    });
    $("fleet-claims").tBodies[0].replaceChildren(...(cs.length ? cs : [emptyRow(5, "no claim by this member")]));
  }

  function emptyRow(cols, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text, "empty");
    td.colSpan = cols;
    return tr;
  }

  function age(seconds) {
    if (!seconds || seconds <= 0) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    return Math.round(seconds / 3600) + " h";
  }

  function drawWorkers(ws, total) {
    const rows = ws.map((w) => {
      const tr = document.createElement("tr");
      tr.dataset.worker = w.id;
      cell(tr, w.client_id || "–");
      cell(tr, w.id);
      cell(tr, w.ip);
      cell(tr, w.functions.join(" ") + more(w.functions.length, w.functions_total), "text");
      cell(tr, w.running.length ? w.running.join(" ") + more(w.running.length, w.running_total) : (w.sleeping ? "sleeping" : "0"), "text");
      return tr;
    });
    $("w-total").textContent = total > ws.length ? "first " + ws.length + " of " + total : "";
    $("workers").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(5, "no worker connected")]));
  }

  // more says how many entries of a list the server left out.
  function more(shown, total) {
    return total > shown ? " … (" + total + ")" : "";
  }

  // patchTable replaces or appends the rows of fns, drops those of
  // removed, and ages the rows whose jobs wait (time: the event's, ms).
  function patchTable(time, fns, removed) {
    const tb = $("functions").tBodies[0];
    if (fnRows.size === 0) tb.replaceChildren();
    for (const n of removed) {
      const tr = fnRows.get(n);
      if (tr) tr.remove();
      fnRows.delete(n);
      waiting.delete(n);
    }
    for (const f of fns) {
      const tr = document.createElement("tr");
      tr.dataset.function = f.name;
      for (const v of [f.name, f.high, f.normal, f.low, f.running, f.workers, age(f.oldest_wait_seconds)]) {
        cell(tr, v);
      }
      const old = fnRows.get(f.name);
      if (old) old.replaceWith(tr); else tb.appendChild(tr);
      fnRows.set(f.name, tr);
      if (f.oldest_wait_seconds > 0) waiting.set(f.name, { tr, wait: f.oldest_wait_seconds, time });
      else waiting.delete(f.name);
    }
    for (const w of waiting.values()) {
      w.tr.lastChild.textContent = age(w.wait + (time - w.time) / 1000);
    }
    if (fnRows.size === 0) tb.replaceChildren(emptyRow(7, "no function yet"));
  }

  function drawChart() {
    const c = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const padL = 40, padR = 8, padT = 8, padB = 18;
    let max = 1;
    for (const k of Object.keys(series)) for (const v of series[k]) max = Math.max(max, v);
    max = niceMax(max);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = css.getPropertyValue("--muted");
    g.strokeStyle = css.getPropertyValue("--line");
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = padT + (h - padT - padB) * (1 - i / 4);
      g.beginPath(); g.moveTo(padL, y + 0.5); g.lineTo(w - padR, y + 0.5); g.stroke();
      g.textAlign = "right"; g.textBaseline = "middle";
      g.fillText(fmt(max * i / 4), padL - 4, y);
    }
    g.textAlign = "left"; g.textBaseline = "bottom";
    g.fillText(HISTORY + " s", padL, h - 2);
    g.textAlign = "right";
    g.fillText("now", w - padR, h - 2);
    const xs = (w - padL - padR) / (HISTORY - 1);
    for (const k of ["submitted", "completed", "failed"]) {
      const pts = series[k];
      if (pts.length < 1) continue;
      g.strokeStyle = css.getPropertyValue("--" + k);
      g.lineWidth = 2;
      g.beginPath();
      pts.forEach((v, i) => {
        const x = w - padR - (pts.length - 1 - i) * xs;
        const y = padT + (h - padT - padB) * (1 - v / max);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 5, 10]) if (v <= f * p) return f * p;
    return 10 * p;
  }
  function fmt(v) { return v >= 10 || v === 0 ? Math.round(v).toString() : v.toFixed(1); }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    auth.set($("token").value);
    $("auth").hidden = true;
    stream();
  });

  $("submit").addEventListener("submit", async (e) => {
    e.preventDefault();
    const fn = $("s-function").value;
    const h = headers();
    h["X-Gearman-Background"] = $("s-background").checked ? "true" : "false";
    h["X-Gearman-Priority"] = $("s-priority").value;
    $("s-result").textContent = "submitting…";
    try {
      const resp = await fetch("/api/v1/jobs/" + encodeURIComponent(fn), { method: "POST", headers: h, body: $("s-payload").value });
      const handle = resp.headers.get("X-Gearman-Job-Handle") || "";
      const text = await resp.text();
      $("s-result").textContent = resp.status + " " + handle + " " + text;
    } catch (err) {
      $("s-result").textContent = "error: " + err;
    }
  });

  // Job search: a handle, a unique (with a function), or a listing by
  // function and state; each row can be cancelled.
  async function api(method, path) {
    const resp = await fetch(path, { method, headers: headers(), cache: "no-store" });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    return { status: resp.status, body };
  }

  async function searchJobs() {
    const fn = $("j-function").value.trim();
    const state = $("j-state").value;
    const key = $("j-key").value.trim();
    let jobs = [], note = "";
    if (key) {
      let r = await api("GET", "/api/v1/jobs/" + encodeURIComponent(key));
      if (r.status === 404 && fn) {
        r = await api("GET", "/api/v1/functions/" + encodeURIComponent(fn) + "/unique/" + encodeURIComponent(key));
      }
      if (r.status === 200) jobs = [r.body]; else note = (r.body && r.body.error) || "HTTP " + r.status;
    } else {
      const q = new URLSearchParams({ limit: "50" });
      if (fn) q.set("function", fn);
      if (state) q.set("state", state);
      const r = await api("GET", "/api/v1/jobs?" + q);
      if (r.status === 200) {
        jobs = r.body.jobs;
        note = r.body.total + (r.body.total === 1 ? " job" : " jobs") + (r.body.total > jobs.length ? ", showing " + jobs.length : "");
      } else note = (r.body && r.body.error) || "HTTP " + r.status;
    }
    $("j-result").textContent = note;
    const now = Date.now();
    const rows = jobs.map((j) => {
      const tr = document.createElement("tr");
      tr.dataset.handle = j.handle;
      cell(tr, j.handle);
      cell(tr, j.function, "text");
      cell(tr, j.unique || "–", "text");
      cell(tr, j.priority);
      cell(tr, j.cancelled ? "cancelled" : j.state);
      cell(tr, j.since ? age((now - Date.parse(j.since)) / 1000) : (j.when ? "due " + new Date(j.when).toLocaleString() : "–"));
      const td = cell(tr, "");
      if (!j.cancelled) {
        const b = document.createElement("button");
        b.textContent = "Cancel";
        b.className = "danger";
        b.dataset.cancel = j.handle;
        td.appendChild(b);
      }
      return tr;
    });
    $("jobs").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(7, "no job found")]));
  }

  $("jobs-form").addEventListener("submit", (e) => {
    e.preventDefault();
    searchJobs().catch((err) => { $("j-result").textContent = "error: " + err; });
  });

  $("jobs").addEventListener("click", async (e) => {
    const h = e.target.dataset && e.target.dataset.cancel;
    if (!h) return;
    e.target.disabled = true;
    const r = await api("POST", "/api/v1/jobs/" + encodeURIComponent(h) + "/cancel");
    await searchJobs();
    $("j-result").textContent = (r.status === 200 ? "cancelled " + h : (r.body && r.body.error) || "HTTP " + r.status) + " · " + $("j-result").textContent;
  });

  window.addEventListener("resize", drawChart);
  drawChart();
  stream();
})();
