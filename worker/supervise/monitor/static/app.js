// gworkerd dashboard: reads /api/v1/events (server-sent events, read with
// fetch so that the bearer token can be sent), fills the function and
// process tables; the buttons POST the actions. The log pane follows
// /api/v1/functions/{function}/logs (read the same way) for the function
// picked in its list or clicked in a table. No external resource.
"use strict";
(function () {
  const { $, sleep, readSSE, setStatus, cell } = Dash;
  const auth = Dash.auth("gworkerd-token");
  const headers = auth.headers;
  const stream = () => Dash.follow("/api/v1/events", auth, (name, data) => apply(JSON.parse(data)));
  const scaleInputs = {}; // function -> value being typed, kept across redraws
  const logMax = 500; // lines kept in the log pane
  let logFn = "";     // function whose log is followed
  let logAbort = null;

  function logState(text) { $("log-state").textContent = text; }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function logLine(cls, meta, text, pid) {
    const box = $("log-lines");
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const div = document.createElement("div");
    div.className = cls;
    if (pid) div.dataset.pid = pid;
    if (meta) {
      const m = document.createElement("span");
      m.className = "meta"; m.textContent = meta;
      div.appendChild(m);
    }
    const t = document.createElement("span");
    t.className = "text"; t.textContent = text;
    div.appendChild(t);
    const e = box.querySelector(".empty");
    if (e) e.remove();
    box.appendChild(div);
    while (box.childElementCount > logMax) box.firstElementChild.remove();
    if (atEnd) box.scrollTop = box.scrollHeight;
  }
  function onLog(name, data) {
    const d = JSON.parse(data);
    if (name === "dropped") { logLine("notice", "", d.message || "dropped " + d.dropped + " lines"); return; }
    if (name !== "line") return;
    const t = new Date(d.time);
    const meta = two(t.getHours()) + ":" + two(t.getMinutes()) + ":" + two(t.getSeconds()) +
      " " + d.pid + (d.stream === "stderr" ? " err" : " out");
    logLine(d.stream === "stderr" ? "stderr" : "stdout", meta, d.line, d.pid);
  }
  function highlight() {
    for (const tr of document.querySelectorAll("#children tbody tr, #functions tbody tr")) {
      tr.classList.toggle("selected", logFn !== "" && tr.dataset.function === logFn);
    }
  }
  function selectLog(fn) {
    if (fn === logFn) return;
    logFn = fn;
    $("log-function").value = fn;
    if (logAbort) logAbort.abort();
    logAbort = null;
    highlight();
    $("log-lines").replaceChildren();
    if (!fn) { logState("pick a function"); return; }
    followLogs(fn);
  }
  // followLogs streams the log of fn until another function is picked;
  // each (re)connection starts with the lines gworkerd kept.
  async function followLogs(fn) {
    const ctl = new AbortController();
    logAbort = ctl;
    for (;;) {
      logState("connecting");
      try {
        const resp = await fetch("/api/v1/functions/" + encodeURIComponent(fn) + "/logs",
          { headers: headers(), cache: "no-store", signal: ctl.signal });
        if (resp.status === 401) { logState("token needed"); return; }
        if (resp.status === 404) { logState("no function " + fn); return; }
        if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
        $("log-lines").replaceChildren();
        logLine("empty", "", "no line yet");
        logState(fn + ", live");
        await readSSE(resp, onLog);
      } catch (e) {
        // fall through to the retry
      }
      if (ctl.signal.aborted) return;
      logState(fn + ", reconnecting");
      await sleep(2000);
      if (ctl.signal.aborted) return;
    }
  }

  function empty(tb, n, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text, "empty");
    td.colSpan = n;
    tb.replaceChildren(tr);
  }
  function dur(ns) {
    let s = Math.floor((ns || 0) / 1e9);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60) + "s";
    return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
  }
  function bytes(n) {
    if (!n) return "–";
    const u = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }

  async function act(fn, action, n) {
    let url = "/api/v1/functions/" + encodeURIComponent(fn) + "/" + action;
    if (action === "scale") url += "?n=" + encodeURIComponent(n);
    $("result").textContent = action + " " + fn + "…";
    try {
      const resp = await fetch(url, { method: "POST", headers: headers() });
      $("result").textContent = action + " " + fn + ": " + resp.status + " " + (await resp.text());
    } catch (err) {
      $("result").textContent = "error: " + err;
    }
  }

  function apply(ev) {
    if (ev.error) { setStatus(false, ev.error); return; }
    const st = ev.status || { functions: [], children: [] };
    const running = {};
    for (const c of st.children || []) if (c.state === "running") running[c.function] = (running[c.function] || 0) + 1;

    const ftb = $("functions").tBodies[0];
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.scale : undefined;
    if ((st.functions || []).length === 0) empty(ftb, 4, "no function");
    else {
      const rows = [];
      for (const f of st.functions) {
        const tr = document.createElement("tr");
        tr.dataset.function = f.function;
        cell(tr, f.function + (f.stopped ? " (stopped)" : ""), "fn").addEventListener("click", () => selectLog(f.function));
        cell(tr, f.desired);
        cell(tr, running[f.function] || 0, "running");
        const td = cell(tr, "", "actions");
        const inp = document.createElement("input");
        inp.type = "number"; inp.min = "0"; inp.dataset.scale = f.function;
        inp.value = scaleInputs[f.function] !== undefined ? scaleInputs[f.function] : f.desired;
        inp.addEventListener("input", () => { scaleInputs[f.function] = inp.value; });
        td.appendChild(inp);
        for (const a of ["scale", "start", "stop", "restart"]) {
          const b = document.createElement("button");
          b.textContent = a; b.dataset.action = a;
          b.addEventListener("click", () => {
            act(f.function, a, inp.value);
            if (a === "scale") delete scaleInputs[f.function];
          });
          td.appendChild(b);
        }
        rows.push(tr);
      }
      ftb.replaceChildren(...rows);
      if (focused !== undefined) {
        const again = ftb.querySelector('input[data-scale="' + CSS.escape(focused) + '"]');
        if (again) again.focus();
      }
    }

    const ctb = $("children").tBodies[0];
    if ((st.children || []).length === 0) empty(ctb, 8, "no process");
    else {
      const rows = [];
      for (const c of st.children) {
        const tr = document.createElement("tr");
        tr.dataset.function = c.function;
        tr.dataset.pid = c.pid;
        tr.addEventListener("click", () => selectLog(c.function));
        cell(tr, c.function + "/" + c.id);
        cell(tr, c.pid || "–");
        cell(tr, c.state, "state-" + c.state);
        cell(tr, c.pid ? dur(c.uptime_ns) : "–");
        cell(tr, c.jobs_done, "jobs");
        cell(tr, c.current_job ? c.current_job + " (" + dur(c.job_age_ns) + ")" : "–", "current");
        cell(tr, bytes(c.rss));
        cell(tr, c.restarts);
        rows.push(tr);
      }
      ctb.replaceChildren(...rows);
    }

    const sel = $("log-function");
    const names = (st.functions || []).map((f) => f.function);
    if (sel.options.length - 1 !== names.length || names.some((n, i) => sel.options[i + 1].value !== n)) {
      const opts = [new Option("function…", "")];
      for (const n of names) opts.push(new Option(n, n));
      sel.replaceChildren(...opts);
      sel.value = logFn;
    }
    highlight();
  }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    auth.set($("token").value);
    $("auth").hidden = true;
    stream();
    if (logFn) { const fn = logFn; logFn = ""; selectLog(fn); }
  });
  $("log-function").addEventListener("change", (e) => selectLog(e.target.value));
  $("log-clear").addEventListener("click", () => $("log-lines").replaceChildren());
  stream();
})();
