// Shared by every console page: the API with the session's CSRF token, live sockets that reconnect,
// and DOM helpers that only ever set text (nothing from the server is parsed as HTML).
"use strict";
const Console = (() => {
  const body = document.body;
  const csrf = body.dataset.csrf || "";
  const me = { login: body.dataset.login, role: body.dataset.role, platform: body.dataset.platform,
               seat: body.dataset.seat };

  async function api(method, path, data) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (data !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(data);
    }
    const resp = await fetch(path, opts);
    if (resp.status === 401) { window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname)); }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = { message: text }; }
    if (!resp.ok) {
      const err = new Error((json && json.message) || resp.statusText);
      err.status = resp.status; err.id = json && json.error_id; err.body = json;
      throw err;
    }
    return json;
  }

  // A WebSocket to ``path`` that reconnects with backoff; onMessage gets each parsed message.
  function live(path, onMessage, onState) {
    let ws = null, delay = 500, stopped = false;
    const dot = document.getElementById("conn");
    function state(ok) {
      if (dot) { dot.classList.toggle("up", ok); dot.title = ok ? "实时连接正常" : "实时连接中断，正在重连"; }
      if (onState) onState(ok);
    }
    function open() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
      ws = new WebSocket(url);
      ws.onopen = () => { delay = 500; state(true); };
      ws.onmessage = (m) => { try { onMessage(JSON.parse(m.data)); } catch (e) { console.error(e); } };
      ws.onclose = () => {
        state(false);
        if (!stopped) { setTimeout(open, delay); delay = Math.min(delay * 2, 10000); }
      };
    }
    open();
    return { close() { stopped = true; if (ws) ws.close(); } };
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k === "onclick") e.addEventListener("click", v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return e;
  }
  function setText(id, value) { const e = document.getElementById(id); if (e) e.textContent = value == null ? "" : String(value); }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function time(epoch) {
    if (!epoch) return "—";
    return new Date(epoch * 1000).toLocaleTimeString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
  }
  function day(epoch) {
    if (!epoch) return "—";
    return new Date(epoch * 1000).toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
  }
  function dur(seconds) {
    if (seconds == null || seconds < 0) return "—";
    const s = Math.floor(seconds), m = Math.floor(s / 60);
    return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
                   : `${m}:${String(s % 60).padStart(2, "0")}`;
  }
  function pct(rate) { return rate == null ? "—" : (rate * 100).toFixed(1) + "%"; }
  function flash(id, text, bad) {
    const e = document.getElementById(id); if (!e) return;
    e.textContent = text; e.classList.toggle("bad", !!bad);
  }
  // A short two-tone alarm through Web Audio (no sound file); browsers allow it after a click.
  let audio = null;
  function enableSound() { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); return audio.resume(); }
  function alarm() {
    window.__hotlineAlarms = (window.__hotlineAlarms || 0) + 1;
    if (!audio) return;
    const t = audio.currentTime;
    [880, 660, 880, 660].forEach((f, i) => {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f; g.gain.value = 0.2;
      o.connect(g); g.connect(audio.destination);
      o.start(t + i * 0.25); o.stop(t + i * 0.25 + 0.2);
    });
  }
  const STATES = { ready: "就绪", paused: "示忙", ringing: "振铃", in_call: "通话中", offline: "离线",
                   unknown: "未知", on_hold: "保持", arrived: "进线", queued: "排队", talking: "通话中",
                   transferring: "转接中", abandoned: "放弃", ended: "已结束" };
  const ACTIONS = { accept: "本平台受理", transfer_110: "转110", handover_110: "移交110（同时派单）",
                    three_way: "三方通话", guide: "解释引导", transfer_12345: "转12345",
                    handle_then_transfer: "先处置后转12345" };
  const ORDER_STATES = { draft: "草稿", accepted: "已受理", dispatched: "已派单", replied: "已答复", callback: "回访中",
                         closed: "已办结", reopened: "重办", merged: "已并单", resolved_on_call: "直接办结" };
  return { api, live, el, setText, clear, time, day, dur, pct, flash, alarm, enableSound, me, STATES, ACTIONS,
           ORDER_STATES };
})();
