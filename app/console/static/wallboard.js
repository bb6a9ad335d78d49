// The supervisor's wallboard: a snapshot, then every call event (numbers masked) over
// /api/wallboard/live; the whole snapshot is read again every 15 s and shortly after a call ends,
// so the queue and seat states from Asterisk and the KPIs stay current.
"use strict";
(() => {
  const C = Console, $ = (id) => document.getElementById(id);
  const calls = new Map();
  let seats = [], queues = [], snapshotAt = 0, chart = null, catChart = null, refreshTimer = null;
  const alerted = new Set();

  const TILES = [
    ["offered", "呼入", (v) => v], ["answered", "接听", (v) => v], ["answer_rate", "接通率", C.pct],
    ["answer_15s_rate", "15秒接通率", C.pct], ["abandon_rate", "放弃率", C.pct],
    ["avg_wait_s", "平均等待(s)", (v) => (v == null ? "—" : v)], ["avg_handle_s", "平均通话(s)", (v) => (v == null ? "—" : v)],
    ["transfers_to_110", "转110", (v) => v], ["transfers_to_12345", "转12345", (v) => v],
    ["transfer_ring_p50_ms", "转接时延(ms)", (v) => (v == null ? "—" : v)], ["three_way", "三方通话", (v) => v],
    ["first_time_rate", "一次办结率", C.pct], ["sign_on_time_rate", "及时签收率", C.pct],
    ["reply_on_time_rate", "按时办结率", C.pct], ["return_rate", "回退率", C.pct], ["reopen_rate", "重办率", C.pct],
    ["satisfaction_rate", "满意率", C.pct], ["survey_satisfaction_rate", "回访满意率", C.pct],
    ["survey_resolved_rate", "回访解决率", C.pct],
  ];

  function renderKpis(k) {
    if (!k) return;
    const tiles = C.clear($("tiles")), f = k.figures, d = k.definitions;
    for (const [key, label, fmt] of TILES) {
      const bad = key === "answer_15s_rate" && f[key] != null && f[key] < k.targets.answer_15s_rate;
      tiles.append(C.el("div", { class: "tile" + (bad ? " bad" : ""), title: d[key] || "", "data-kpi": key },
                        C.el("span", { class: "label" }, label), C.el("b", { class: "value" }, fmt(f[key]))));
    }
    const defs = C.clear($("definitions"));
    for (const [key, text] of Object.entries(d)) { defs.append(C.el("dt", {}, key), C.el("dd", {}, text)); }
    const topics = C.clear($("topics"));
    for (const t of (k.hot_topics || {}).categories || []) {
      topics.append(C.el("tr", { class: t.rise ? "bad" : "" }, C.el("td", {}, t.key), C.el("td", {}, t.name),
                         C.el("td", {}, t.count), C.el("td", {}, t.baseline), C.el("td", {}, t.rise ? "突发预警" : "")));
    }
    const districts = C.clear($("districts"));
    for (const t of (k.hot_topics || {}).districts || []) {
      districts.append(C.el("tr", { class: t.rise ? "bad" : "" }, C.el("td", {}, t.name), C.el("td", {}, t.count),
                            C.el("td", {}, t.baseline), C.el("td", {}, t.rise ? "突发预警" : "")));
    }
    renderChart(k);
    renderCategories((k.hot_topics || {}).categories || []);
  }

  // Today's categories beside their 4-week daily mean, as bars (the codes on the axis).
  function renderCategories(rows) {
    const box = $("chart-categories");
    if (typeof uPlot === "undefined" || !rows.length) { C.clear(box); catChart = null; return; }
    const top = rows.slice(0, 10), codes = top.map((t) => t.key);
    const data = [top.map((_, i) => i), top.map((t) => t.count), top.map((t) => t.baseline)];
    if (catChart) { catChart.destroy(); catChart = null; }
    C.clear(box);
    const bars = uPlot.paths.bars({ size: [0.6, 60] });
    catChart = new uPlot({
      width: Math.max(320, box.clientWidth - 8), height: 180,
      scales: { x: { time: false, range: [-0.6, top.length - 0.4] } },
      axes: [{ values: (u, ticks) => ticks.map((i) => codes[i] || "") , splits: () => codes.map((_, i) => i) },
             { label: "工单" }],
      series: [{ label: "类别" },
               { label: "今日", paths: bars, fill: "rgba(37,99,235,.6)", stroke: "#2563eb", points: { show: false } },
               { label: "近4周日均", stroke: "#dc2626", dash: [4, 4], points: { show: true, size: 6 } }],
    }, data, box);
  }

  function renderChart(k) {
    const box = $("chart-hourly");
    const hours = k.hourly.map((h) => h.hour);
    const offered = k.hourly.map((h) => h.offered);
    const rate = k.hourly.map((h) => (h.answer_15s_rate == null ? null : h.answer_15s_rate * 100));
    const target = k.hourly.map(() => k.targets.answer_15s_rate * 100);
    if (typeof uPlot === "undefined") {
      C.clear(box).append(C.el("p", { class: "muted" }, offered.map((v, i) => `${i}时:${v}`).join(" ")));
      return;
    }
    const data = [hours, offered, rate, target];
    if (chart) { chart.setData(data); return; }
    C.clear(box);
    chart = new uPlot({
      width: Math.max(320, box.clientWidth - 8), height: 220,
      scales: { x: { time: false }, n: { auto: true }, pct: { range: [0, 100] } },
      axes: [{ label: "时" }, { scale: "n", label: "来电" }, { scale: "pct", side: 1, label: "15秒接通率 %", grid: { show: false } }],
      series: [{ label: "时" },
               { label: "来电", scale: "n", stroke: "#2563eb", fill: "rgba(37,99,235,.15)" },
               { label: "15秒接通率", scale: "pct", stroke: "#16a34a", width: 2 },
               { label: "95% 线", scale: "pct", stroke: "#dc2626", dash: [6, 4] }],
    }, data, box);
  }

  function renderQueues() {
    const body = C.clear($("queues"));
    for (const q of queues) {
      body.append(C.el("tr", { class: q.longest_wait_s >= 15 ? "bad" : "" }, C.el("td", {}, q.queue), C.el("td", {}, q.waiting),
                       C.el("td", {}, C.dur(q.longest_wait_s)), C.el("td", {}, q.ready), C.el("td", {}, q.paused)));
    }
  }

  function renderSeats() {
    const body = C.clear($("seats")), now = Date.now() / 1000;
    for (const s of seats) {
      const call = s.call ? calls.get(s.call) : null;
      body.append(C.el("tr", { "data-seat": s.seat, class: "state-" + s.state },
        C.el("td", {}, s.seat + (s.kind !== "operator" ? `（${s.kind === "linkage" ? "联动" : "班长"}）` : "")),
        C.el("td", {}, s.user || "—"),
        C.el("td", {}, (C.STATES[s.state] || s.state) + (s.paused && s.paused_reason ? `·${s.paused_reason}` : "")),
        C.el("td", {}, call ? call.caller || "" : ""),
        C.el("td", {}, call && call.since ? C.dur(now - call.since) : "")));
    }
  }

  function renderCalls() {
    const body = C.clear($("calls")), now = Date.now() / 1000;
    const sup = () => $("supervisor-seat").value;
    for (const c of [...calls.values()].sort((a, b) => (a.since || 0) - (b.since || 0))) {
      const buttons = C.el("td", {});
      for (const [mode, label] of [["listen", "监听"], ["whisper", "耳语"], ["barge", "强插"]]) {
        buttons.append(C.el("button", { class: "small", "data-mode": mode, disabled: !c.seat,
          onclick: () => spy(c.linkedid, mode, sup()) }, label));
      }
      body.append(C.el("tr", { "data-linkedid": c.linkedid, class: c.alert ? "bad" : "" },
        C.el("td", {}, c.service || ""), C.el("td", {}, c.caller || "—"),
        C.el("td", {}, C.STATES[c.state] || c.state || ""), C.el("td", {}, c.seat || "—"),
        C.el("td", {}, c.since ? C.dur(now - c.since) : ""), buttons));
    }
    C.setText("call-count", `${calls.size} 路`);
  }

  function renderLate(snap) {
    const body = C.clear($("late"));
    for (const p of snap.late || []) {
      body.append(C.el("tr", { class: "bad" }, C.el("td", {}, p.ticket), C.el("td", {}, p.handler_name),
                       C.el("td", {}, p.summary), C.el("td", {}, "超期 " + C.day(p.due_at))));
    }
    for (const a of snap.supervised || []) {
      body.append(C.el("tr", {}, C.el("td", {}, a.ticket), C.el("td", {}, a.handler),
                       C.el("td", {}, `督办第${a.level}级`), C.el("td", {}, C.day(a.fired_at))));
    }
    if (!body.firstChild) body.append(C.el("tr", {}, C.el("td", { class: "muted" }, "无超期工单")));
  }

  function banner(text, key) {
    if (alerted.has(key)) return;
    alerted.add(key);
    const b = $("alert-banner");
    b.textContent = "⚠ 生命危险警报 " + text;
    b.classList.remove("hidden");
    C.alarm();
  }

  async function spy(linkedid, mode, supervisor) {
    try {
      await C.api("POST", `/api/calls/${encodeURIComponent(linkedid)}/spy`, { supervisor, mode });
      C.flash("bar-msg", `${mode === "listen" ? "监听" : mode === "whisper" ? "耳语" : "强插"}：正在呼叫班长话机 ${supervisor}`);
    } catch (e) { C.flash("bar-msg", "监控失败：" + e.message, true); }
  }

  function applySnapshot(snap) {
    snapshotAt = snap.at;
    calls.clear();
    for (const c of snap.calls || []) calls.set(c.linkedid, c);
    seats = snap.seats || []; queues = snap.queues || [];
    renderKpis(snap.kpis); renderQueues(); renderSeats(); renderCalls(); renderLate(snap);
    for (const a of snap.alerts || []) banner(`${a.service || ""} ${a.category_name || ""} ${a.summary || ""}`, "wo:" + a.ticket);
    C.setText("updated", C.time(snap.at));
  }

  const LIVE = { arrived: "arrived", queued: "queued", ringing: "ringing", answered: "talking", bridged: "talking",
                 transferred: "transferring", transfer_failed: "transferring" };
  function onEvent(ev) {
    if (ev.type === "snapshot") { applySnapshot(ev); return; }
    if (ev.kind !== "event") return;
    let c = calls.get(ev.linkedid);
    if (ev.type === "hangup" || ev.type === "abandoned") {
      calls.delete(ev.linkedid);
      for (const s of seats) if (s.call === ev.linkedid) { s.call = null; s.state = "ready"; }
      scheduleRefresh(1500);
    } else if (LIVE[ev.type]) {
      if (!c) { c = { linkedid: ev.linkedid, since: ev.at, service: ev.service, caller: ev.caller }; calls.set(ev.linkedid, c); }
      c.state = LIVE[ev.type];
      if (ev.service) c.service = ev.service;
      if (ev.caller) c.caller = ev.caller;
      const who = ev.seat || ev.data.seat;
      if (who && (ev.type === "ringing" || ev.type === "answered")) {
        c.seat = who;
        for (const s of seats) if (s.seat === who) { s.call = ev.linkedid; s.state = ev.type === "ringing" ? "ringing" : "in_call"; }
      }
    } else if (ev.type === "alert") {
      if (c) c.alert = true;
      banner(`${ev.service || ""} 来电 ${ev.caller || ""}${ev.data.category ? " · 类别 " + ev.data.category : ""}`, "call:" + ev.linkedid);
    }
    renderCalls(); renderSeats();
    C.setText("updated", C.time(ev.at));
  }

  function scheduleRefresh(ms) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      try { applySnapshot(await C.api("GET", "/api/wallboard")); } catch (e) { /* the socket still runs */ }
      scheduleRefresh(15000);
    }, ms);
  }

  $("sound-on").addEventListener("click", () => C.enableSound().then(() => C.flash("bar-msg", "提示音已启用")));
  setInterval(() => { renderCalls(); renderSeats(); }, 1000);
  C.live("/api/wallboard/live", onEvent);
  scheduleRefresh(0);  // the first frame over HTTP too: the page is useful even while the socket is down
})();
