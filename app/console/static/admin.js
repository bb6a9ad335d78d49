// The admin page: the site as rendered, Asterisk's buttons with their output, the harassment list and
// the console's accounts.
"use strict";
(() => {
  const C = Console, $ = (id) => document.getElementById(id);
  const ROLE = { operator: "话务员", supervisor: "班长", admin: "管理员", department: "承办单位" };

  async function users() {
    const body = C.clear($("users"));
    for (const u of (await C.api("GET", "/api/users")).users) {
      const toggle = C.el("button", { class: "small", onclick: async () => {
        try { await C.api("PATCH", `/api/users/${u.login}`, { disabled: !u.disabled }); await users(); }
        catch (e) { C.flash("user-msg", e.message, true); } } }, u.disabled ? "启用" : "停用");
      body.append(C.el("tr", { "data-login": u.login, class: u.disabled ? "muted" : "" },
        C.el("td", {}, u.login), C.el("td", {}, u.display_name), C.el("td", {}, ROLE[u.role] || u.role),
        C.el("td", {}, u.platform || "—"), C.el("td", {}, u.seat || "—"), C.el("td", {}, u.handler || "—"),
        C.el("td", {}, u.disabled ? "已停用" : (u.locked_until && u.locked_until > Date.now() / 1000 ? "已锁定" : "正常")),
        C.el("td", {}, toggle)));
    }
  }

  async function harassment() {
    const list = C.clear($("harassment"));
    try {
      for (const n of (await C.api("GET", "/api/harassment")).numbers) {
        list.append(C.el("li", {}, n, " ", C.el("button", { class: "small", onclick: async () => {
          await C.api("DELETE", "/api/harassment", { number: n }); await harassment(); } }, "移除")));
      }
    } catch (e) { list.append(C.el("li", { class: "bad" }, "名单暂不可用：" + e.message)); }
  }

  async function op(path, label) {
    C.setText("ops-output", `${label} ……`);
    try {
      const r = await C.api("POST", path);
      const lines = r.output || [JSON.stringify(r, null, 1)];
      C.setText("ops-output", `${label}：${r.ok === false ? "失败" : "完成"}${r.seconds != null ? `（${r.seconds} 秒）` : ""}\n` + lines.join("\n"));
    } catch (e) { C.setText("ops-output", `${label}失败：${e.message}`); }
  }
  $("dialplan-check").addEventListener("click", () => op("/api/admin/dialplan-check", "检查拨号计划"));
  $("dialplan-reload").addEventListener("click", () => op("/api/admin/dialplan-reload", "重新加载拨号计划"));
  $("rules-reload").addEventListener("click", () => op("/api/route/reload", "重新加载路由规则"));

  $("harassment-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await C.api("POST", "/api/harassment", { number: $("harassment-number").value }); $("harassment-number").value = ""; }
    catch (e) { alert(e.message); }
    await harassment();
  });
  $("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target), body = {};
    for (const [k, v] of f.entries()) if (v !== "") body[k] = v;
    try { await C.api("POST", "/api/users", body); ev.target.reset(); C.flash("user-msg", "已添加"); await users(); }
    catch (e) { C.flash("user-msg", e.message, true); }
  });

  (async () => {
    try { C.setText("site", JSON.stringify(await C.api("GET", "/api/admin/site"), null, 2)); } catch (e) { C.setText("site", e.message); }
    await users(); await harassment();
  })();
})();
