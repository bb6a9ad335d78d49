// A department's page: its own orders (numbers masked by the server), each part's deadlines, and the
// sign / progress / reply / extension / return forms.
"use strict";
(() => {
  const C = Console, $ = (id) => document.getElementById(id);
  const STATE = { dispatched: "待签收", signed: "已签收", in_progress: "办理中", extension_requested: "延期申请中",
                  extended: "已延期", replied: "已答复", returned: "已回退", reopened: "重办" };
  let selected = null;

  async function load() {
    const state = $("state-filter").value;
    const q = state ? `?state=${encodeURIComponent(state)}` : "";
    const body = C.clear($("orders"));
    try {
      for (const view of (await C.api("GET", "/api/handler/orders" + q)).orders) {
        const wo = view.work_order;
        for (const p of view.parts) {
          const late = p.due_at && p.due_at < Date.now() / 1000 && !["replied", "returned"].includes(p.state);
          body.append(C.el("tr", { "data-ticket": wo.ticket, class: late ? "bad" : "" },
            C.el("td", {}, wo.ticket), C.el("td", {}, wo.category ? wo.category.name || wo.category.code : "—"),
            C.el("td", {}, wo.summary), C.el("td", {}, wo.caller || "—"), C.el("td", {}, STATE[p.state] || p.state),
            C.el("td", {}, C.day(p.sign_due_at)), C.el("td", {}, C.day(p.due_at)),
            C.el("td", {}, C.el("button", { class: "small", onclick: () => open(wo, p) }, "处理"))));
        }
      }
    } catch (e) { C.flash("bar-msg", e.message, true); }
  }

  function open(wo, part) {
    selected = { ticket: wo.ticket, part: part.no };
    C.setText("detail-title", `${wo.ticket} 第${part.no}部分 · ${STATE[part.state] || part.state}`);
    C.setText("detail-summary", `${wo.summary}${wo.address ? " · 地址：" + wo.address : ""}`);
    $("order-detail").classList.remove("hidden");
  }

  for (const form of document.querySelectorAll("form[data-step]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!selected) return;
      const body = {};
      for (const [k, v] of new FormData(form).entries()) {
        if (v === "") continue;
        body[k] = k === "working_days" ? Number(v) : v;
      }
      try {
        await C.api("POST", `/api/work-orders/${selected.ticket}/parts/${selected.part}/${form.dataset.step}`,
                    Object.keys(body).length ? body : undefined);
        C.flash("detail-msg", "已提交"); form.reset(); await load();
      } catch (e) { C.flash("detail-msg", "提交失败：" + e.message, true); }
    });
  }
  $("state-filter").addEventListener("change", load);
  load();
  setInterval(load, 30000);
})();
