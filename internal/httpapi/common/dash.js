// Shared by the gserverd and gworkerd dashboards (served as
// common/dash.js): the bearer token, server-sent events read with fetch
// (EventSource cannot send the token), the live/reconnecting badge and
// table cells. No external resource.
"use strict";
window.Dash = (function () {
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // auth keeps the token in sessionStorage under key; a "#token=..." in
  // the URL sets it (and is removed from the address bar).
  function auth(key) {
    let token = sessionStorage.getItem(key) || "";
    const m = /(?:^|[#&])token=([^&]*)/.exec(location.hash);
    if (m) {
      token = decodeURIComponent(m[1]);
      sessionStorage.setItem(key, token);
      history.replaceState(null, "", location.pathname);
    }
    return {
      headers: () => (token ? { Authorization: "Bearer " + token } : {}),
      set(t) { token = t; sessionStorage.setItem(key, t); },
    };
  }

  // readSSE reads server-sent events from a fetch response until it ends,
  // calling on(name, data) for each.
  async function readSSE(resp, on) {
    const rd = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await rd.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        let name = "message";
        const data = [];
        for (const l of ev.split("\n")) {
          if (l.startsWith("event: ")) name = l.slice(7);
          else if (l.startsWith("data: ")) data.push(l.slice(6));
        }
        if (data.length) on(name, data.join("\n"));
      }
    }
  }

  function setStatus(on, text) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (on ? "on" : "off");
  }

  // follow reads the event stream at url for good, reconnecting after 2 s;
  // on 401 it shows the token form (#auth) and returns: the form's
  // handler calls follow again.
  async function follow(url, a, on) {
    for (;;) {
      try {
        const resp = await fetch(url, { headers: a.headers(), cache: "no-store" });
        if (resp.status === 401) {
          setStatus(false, "token needed");
          $("auth").hidden = false;
          return;
        }
        if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
        setStatus(true, "live");
        await readSSE(resp, on);
      } catch (e) {
        // fall through to the retry
      }
      setStatus(false, "reconnecting");
      await sleep(2000);
    }
  }

  function cell(tr, v, cls) {
    const td = document.createElement("td");
    td.textContent = v;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  return { $, sleep, auth, readSSE, setStatus, follow, cell };
})();
