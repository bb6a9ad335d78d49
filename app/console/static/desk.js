// The operator's desk: seat state, the call on my seat, its transcript and draft work order, the
// flow buttons and the after-call outcome. Everything arrives over two sockets: /api/desk/live (the
// events of calls on my seat) and /api/calls/{id}/live (the call's transcript and work order).
"use strict";
(() => {
  const C = Console, $ = (id) => document.getElementById(id);
  const seat = C.me.seat;
  let current = null;        // linkedid of the call on the card
  let callSocket = null;
  let order = null;          // the draft work order as last received
  const edited = new Set();  // fields the operator changed: incoming drafts no longer overwrite them
  const finals = new Map();  // tap:seq -> segment (a segment may come in the snapshot and live)
  let partial = null;
  let routeTimer = null;

  function renderState(row) {
    const state = row ? row.state : "unknown";
    C.setText("seat-state", C.STATES[state] || state);
    $("seat-state").className = "state-" + state;
    C.setText("seat-reason", row && row.paused && row.paused_reason ? "（" + row.paused_reason + "）" : "");
  }

  function renderLists(snap) {
    const orders = C.clear($("my-orders"));
    for (const o of snap.orders || []) {
      orders.append(C.el("tr", {}, C.el("td", {}, o.ticket), C.el("td", {}, o.category_name || "—"),
                         C.el("td", {}, o.summary), C.el("td", {}, C.ORDER_STATES[o.status] || o.status)));
    }
    if (!(snap.orders || []).length) orders.append(C.el("tr", {}, C.el("td", { class: "muted" }, "无")));
    const cbs = C.clear($("my-callbacks"));
    for (const t of snap.callbacks || []) {
      cbs.append(C.el("tr", {}, C.el("td", {}, t.kind), C.el("td", {}, t.number), C.el("td", {}, C.day(t.due_at)),
                      C.el("td", {}, t.state)));
    }
    if (!(snap.callbacks || []).length) cbs.append(C.el("tr", {}, C.el("td", { class: "muted" }, "无")));
  }

  function log(text, cls) {
    $("flow-log").append(C.el("li", { class: cls || "" }, C.time(Date.now() / 1000) + " " + text));
  }

  async function startCall(linkedid, state) {
    if (current === linkedid) return;
    current = linkedid;
    order = null; edited.clear(); finals.clear(); partial = null;
    C.clear($("transcript")); C.clear($("flow-log")); C.clear($("history"));
    $("no-call").classList.add("hidden"); $("call").classList.remove("hidden");
    C.setText("linkedid", linkedid); C.setText("call-state", C.STATES[state] || state || "");
    C.setText("since", C.time(Date.now() / 1000));
    C.setText("suggestion", ""); $("alert-banner").classList.add("hidden");
    for (const id of ["wo-category", "wo-action", "wo-address", "wo-summary"]) $(id).value = "";
    C.setText("ticket", ""); C.setText("wo-status", "");
    try {
      const who = await C.api("GET", `/api/calls/${encodeURIComponent(linkedid)}/caller`);
      C.setText("caller", who.caller || "未显示号码");
      C.setText("calls-24h", who.calls_24h); C.setText("open-orders", who.open_orders.length);
      $("harassment").classList.toggle("hidden", !who.harassment);
      for (const r of who.recent) $("history").append(C.el("li", {}, `${C.day(r.arrived_at)} ${r.service || ""} ${r.outcome || ""}`));
      for (const o of who.open_orders) $("history").append(C.el("li", {}, `未结 ${o.ticket} ${o.category_name || ""} ${o.summary}`));
    } catch (e) { C.setText("caller", "（来电信息暂不可用）"); }
    if (callSocket) callSocket.close();
    callSocket = C.live(`/api/calls/${encodeURIComponent(linkedid)}/live`, onCallMessage);
  }

  function speakerName(s) {
    return { caller: "来电人", operator_12345: "12345话务员", operator_110: "110接警员", linkage: "联动方" }[s] || s;
  }

  function addSegment(seg) {
    const key = seg.tap + ":" + seg.seq;
    if (seg.kind === "partial") {
      if (!partial) { partial = C.el("p", { class: "partial" }); $("transcript").append(partial); }
      partial.textContent = speakerName(seg.speaker) + "：" + seg.text + "…";
      return;
    }
    if (finals.has(key)) return;
    finals.set(key, seg);
    if (partial) { partial.remove(); partial = null; }
    const text = seg.kind === "gap" ? `（${speakerName(seg.speaker)}的语音未能转写：${seg.text}）` : seg.text;
    const line = C.el("p", { class: "seg " + seg.speaker + (seg.kind === "gap" ? " gap" : "") },
                      C.el("b", {}, speakerName(seg.speaker) + "："), text);
    $("transcript").append(line);
    $("transcript").scrollTop = $("transcript").scrollHeight;
    if (seg.speaker === "caller" && seg.kind === "final") {
      clearTimeout(routeTimer);
      routeTimer = setTimeout(suggest, 300);
    }
  }

  // The routing engine on everything the caller said so far; the answer is also kept with the call
  // (its context travels to whoever takes it next).
  async function suggest() {
    const call = current;
    const text = [...finals.values()].filter((x) => x.speaker === "caller" && x.kind === "final")
      .sort((a, b) => a.start - b.start).map((x) => x.text).join("。");
    if (!call || !text) return;
    try {
      const r = await C.api("POST", `/api/calls/${encodeURIComponent(call)}/route`, { text: text.slice(0, 4000) });
      if (call !== current) return;
      const box = C.clear($("suggestion"));
      box.append(C.el("b", {}, `路由建议：${C.ACTIONS[r.action] || r.action}`),
                 r.category ? ` · ${r.category.code} ${r.category.name_zh}` : "",
                 r.life_threat ? " · 危及生命" : "",
                 (r.linkage || []).length ? ` · 联动 ${r.linkage.join("、")}` : "");
      const list = C.el("ul", { class: "small" });
      for (const reason of (r.reasons || []).slice(0, 6)) list.append(C.el("li", {}, reason));
      box.append(list);
    } catch (e) { /* the draft still fills itself */ }
  }

  function fillOrder(wo) {
    if (!wo) return;
    order = wo;
    C.setText("ticket", wo.ticket); C.setText("wo-status", C.ORDER_STATES[wo.status] || wo.status);
    $("wo-category").value = wo.category ? `${wo.category.code} ${wo.category.name || ""}` : "";
    $("wo-action").value = C.ACTIONS[wo.action] || wo.action || "";
    if (!edited.has("address")) $("wo-address").value = wo.address || "";
    if (!edited.has("summary")) $("wo-summary").value = wo.summary || "";
    if (!edited.has("confidential")) $("wo-confidential").checked = !!wo.confidential;
    if (wo.life_threat || wo.alert) showAlert(wo.alert ? (wo.alert.text || "可能危及生命") : "可能危及生命");
    $("confirm-order").disabled = wo.status !== "draft";
    $("dispatch").disabled = !["accepted", "dispatched", "reopened"].includes(wo.status);
    suggestHandlers(wo);
  }

  // The handlers a matter can go to; those the draft names (its district's government, the
  // category's department, 110 for a matter 110 must act on) are selected for the operator.
  let handlers = [];
  async function loadHandlers() {
    try { handlers = (await C.api("GET", "/api/handlers")).handlers; } catch (e) { handlers = []; }
    const sel = C.clear($("dispatch-to"));
    for (const h of handlers) sel.append(C.el("option", { value: h.id }, h.name));
  }
  function suggestHandlers(wo) {
    const wanted = new Set();
    for (const d of wo.dispatch || []) {
      if (d.to === "110") wanted.add("110");
      for (const h of handlers) {
        if (d.to === "local_government" && d.district && h.district === d.district) wanted.add(h.id);
        if (d.to === "department" && d.category && (h.categories || []).includes(d.category)) wanted.add(h.id);
      }
    }
    for (const h of handlers) {
      if (wo.category && (h.categories || []).includes(wo.category.code)) wanted.add(h.id);
      if (h.district && wo.address && wo.address.includes(h.district)) wanted.add(h.id);
    }
    if (!wanted.size) return;
    for (const o of $("dispatch-to").options) if (!o.dataset.touched) o.selected = wanted.has(o.value);
  }

  function showAlert(text) {
    const b = $("alert-banner");
    if (!b.classList.contains("hidden") && b.dataset.call === current) return;
    b.dataset.call = current || "";
    b.textContent = "⚠ 生命危险警报：" + text + " —— 110 先行处置，请立即三方通话或转110";
    b.classList.remove("hidden");
    C.alarm();
  }

  function onCallMessage(msg) {
    if (msg.type === "snapshot") {
      for (const seg of msg.segments || []) addSegment(seg);
      fillOrder(msg.work_order);
    } else if (msg.type === "segment") addSegment(msg);
    else if (msg.type === "work_order") fillOrder(msg.work_order);
    else if (msg.type === "alert") showAlert(msg.text || "可能危及生命");
  }

  const EVENT_TEXT = {
    ringing: (e) => (e.seat === seat ? "来电振铃" : `对方坐席 ${e.seat || ""} 振铃`),
    answered: (e) => (e.seat === seat ? "已接听" : `${e.seat || "对方"} 已接听`),
    transferred: (e) => `已转接 → ${e.data.target || ""}（${e.data.kind || ""}）`,
    transfer_failed: () => "转接未接通，来电已回到本席",
    conference_joined: (e) => `${e.data.party || ""} 加入三方通话`,
    conference_left: (e) => `${e.data.party || ""} 离开三方通话`,
    alert: () => "生命危险警报",
    hangup: () => "通话结束",
    abandoned: () => "来电人放弃",
    outcome: (e) => `结果：${e.data.outcome || ""}`,
  };

  function onDesk(msg) {
    if (msg.type === "snapshot") {
      renderState(msg.state); renderLists(msg);
      const call = (msg.calls || [])[0];
      if (call) startCall(call.linkedid, call.state);
      return;
    }
    if (msg.kind !== "event") return;
    if ((msg.type === "ringing" || msg.type === "answered") && msg.seat === seat && msg.linkedid !== current) {
      startCall(msg.linkedid, msg.type === "ringing" ? "ringing" : "talking");
    }
    if (msg.linkedid !== current) return;
    const text = EVENT_TEXT[msg.type];
    if (text) log(text(msg), msg.type === "transfer_failed" ? "bad" : "");
    if (msg.type === "answered" && msg.seat === seat) C.setText("call-state", C.STATES.talking);
    if (msg.type === "hangup") C.setText("call-state", C.STATES.ended);
    if (msg.type === "alert") showAlert("可能危及生命");
    if (msg.type === "ringing" || msg.type === "answered" || msg.type === "hangup") refreshState();
  }

  async function refreshState() {
    try { const snap = await C.api("GET", "/api/desk"); renderState(snap.state); renderLists(snap); } catch (e) { /* next event */ }
  }

  async function pause(paused) {
    try {
      await C.api("POST", `/api/seats/${seat}/pause`, { paused, reason: paused ? $("pause-reason").value : "" });
      C.flash("bar-msg", paused ? "已示忙：不会再分配来电" : "已示闲：可以接听来电");
      await refreshState();
    } catch (e) { C.flash("bar-msg", "操作失败：" + e.message, true); }
  }
  $("ready").addEventListener("click", () => pause(false));
  $("pause").addEventListener("click", () => pause(true));

  async function flow(kind) {
    if (!current) return;
    const id = encodeURIComponent(current);
    const calls = {
      transfer: ["POST", `/api/calls/${id}/transfer`, { mode: "blind" }, "一键转接已发起"],
      attended: ["POST", `/api/calls/${id}/transfer`, { mode: "attended" }, "咨询转接：正在呼叫对方平台"],
      complete: ["POST", `/api/calls/${id}/transfer/complete`, undefined, "转接完成"],
      cancel: ["POST", `/api/calls/${id}/transfer/cancel`, undefined, "转接已取消，回到来电人"],
      three_way: ["POST", `/api/calls/${id}/conference`, {}, "三方通话：正在邀请对方平台"],
      linkage: ["POST", `/api/calls/${id}/linkage`, { hotline: $("linkage-target").value }, "联动已发起"],
    }[kind];
    try {
      await C.api(calls[0], calls[1], calls[2]);
      log(calls[3]);
      $("btn-complete").classList.toggle("hidden", kind !== "attended");
      $("btn-cancel").classList.toggle("hidden", kind !== "attended");
    } catch (e) { log(`失败：${e.message}`, "bad"); }
  }
  for (const b of document.querySelectorAll("[data-flow]")) b.addEventListener("click", () => flow(b.dataset.flow));

  for (const [id, field] of [["wo-address", "address"], ["wo-summary", "summary"], ["wo-confidential", "confidential"]]) {
    $(id).addEventListener("input", () => edited.add(field));
  }
  $("order-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!order) return;
    const corrections = {};
    if (edited.has("address")) corrections.address = $("wo-address").value.trim() || null;
    if (edited.has("summary")) corrections.summary = $("wo-summary").value;
    if (edited.has("confidential")) corrections.confidential = $("wo-confidential").checked;
    try {
      const res = await C.api("POST", `/api/work-orders/${order.ticket}/confirm`, { corrections });
      edited.clear(); fillOrder(res.work_order);
      C.flash("order-msg", `工单 ${res.work_order.ticket} 已确认`);
      refreshState();
    } catch (e) { C.flash("order-msg", "确认失败：" + e.message, true); }
  });
  $("dispatch-to").addEventListener("change", () => {
    for (const o of $("dispatch-to").options) o.dataset.touched = "1";
  });
  $("dispatch").addEventListener("click", async () => {
    if (!order) return;
    const chosen = [...$("dispatch-to").selectedOptions].map((o) => o.value);
    if (!chosen.length) { C.flash("dispatch-msg", "请选择承办单位", true); return; }
    try {
      const res = await C.api("POST", `/api/work-orders/${order.ticket}/dispatch`, { handlers: chosen });
      fillOrder(res.work_order);
      C.flash("dispatch-msg", `已派单：${res.parts.map((p) => (p.handler && p.handler.name) || p.handler).join("、")}`);
      refreshState();
    } catch (e) { C.flash("dispatch-msg", "派单失败：" + e.message, true); }
  });
  $("set-outcome").addEventListener("click", async () => {
    if (!current) return;
    try {
      await C.api("PUT", `/api/calls/${encodeURIComponent(current)}/outcome`, { outcome: $("outcome").value });
      C.flash("outcome-msg", "已记录");
    } catch (e) { C.flash("outcome-msg", "记录失败：" + e.message, true); }
  });

  loadHandlers().then(() => C.live("/api/desk/live", onDesk));
})();
