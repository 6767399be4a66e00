// The call card: follows /ui/card/stream (the session cookie authenticates it) and shows one card per call.
// Words come from the page (gateway/web/words.py); every text is set with textContent, never as HTML.
"use strict";
(function () {
  const status = document.getElementById("card-status");
  const cards = document.getElementById("cards");
  const words = JSON.parse(status.dataset.words);
  const csrf = status.dataset.csrf;

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }

  function cardOf(callId) {
    return Array.from(cards.querySelectorAll("article.card")).find((c) => c.dataset.callId === callId);
  }

  function line(list, term, value) {
    list.append(el("dt", term), el("dd", value));
  }

  function crmPart(crm) {
    const part = el("section", null, { "class": "crm" });
    part.append(el("h3", words.card_crm));
    if (!crm || !crm.available) {
      part.append(el("p", (crm && crm.reason) || words.card_no_crm));
      return part;
    }
    if (!crm.known) part.append(el("p", words.card_unknown, { "class": "unknown" }));
    const items = el("ul", null, { "class": "items" });
    for (const item of crm.items || []) {
      const who = item.responsible ? " · " + words.card_responsible_prefix + item.responsible.name : "";
      items.append(el("li", item.type + " " + item.id + ": " + item.title + who));
    }
    if (items.childElementCount) part.append(items);
    if ((crm.last_activities || []).length) {
      part.append(el("h4", words.card_last_activities));
      const acts = el("ul");
      for (const a of crm.last_activities) acts.append(el("li", a.created_at + " · " + a.kind + " · " + a.direction));
      part.append(acts);
    }
    return part;
  }

  async function post(path, fields) {
    const body = new URLSearchParams({ csrf: csrf, ...fields });
    const answer = await fetch(path, { method: "POST", body: body, credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    let detail = "";
    try { detail = (await answer.json()).detail || ""; } catch (e) { detail = ""; }
    return { ok: answer.ok, detail: detail };
  }

  function offer(card, data) {
    const box = el("div", null, { "class": "offer" });
    const said = el("p", null, { "role": "status", "class": "offer-result" });
    for (const type of data.crm.offer.create) {
      const button = el("button", words["card_create_" + type] || type, { "type": "button", "data-create": type });
      button.addEventListener("click", async () => {
        box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        const done = await post("/ui/card/create", { call_id: data.call_id, type: type });
        said.textContent = done.ok ? words.card_created : done.detail;
        if (!done.ok) box.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      });
      box.append(button);
    }
    box.append(said);
    card.append(box);
  }

  function ringing(data) {
    if (cardOf(data.call_id)) return;
    const none = document.getElementById("no-call");
    if (none) none.remove();
    const card = el("article", null, { "class": "card", "data-call-id": data.call_id, "tabindex": "-1" });
    const caller = data.caller || {};
    card.append(el("h2", words.card_calling + ": " + (caller.e164 || caller.as_dialled || words.card_anonymous)));
    const facts = el("dl");
    const number = data.number || {};
    line(facts, words.card_number_called, number.e164 || number.dialled || "");
    const state = el("dd", words.card_ringing, { "class": "state" });
    facts.append(el("dt", words.card_state), state);
    card.append(facts, crmPart(data.crm));
    if (data.crm && data.crm.offer) offer(card, data);
    cards.prepend(card);
  }

  function setState(callId, text, kind) {
    const card = cardOf(callId);
    if (!card) return;
    card.querySelector(".state").textContent = text;
    card.dataset.state = kind;
  }

  function who(target) {
    if (!target) return "";
    return target.extension || target.number || (target.employee_id !== undefined ? "#" + target.employee_id : "");
  }

  const stream = new EventSource("/ui/card/stream");
  stream.addEventListener("open", () => { status.textContent = words.card_connected; });
  stream.addEventListener("error", () => { status.textContent = words.card_lost; });
  stream.addEventListener("ringing", (e) => ringing(JSON.parse(e.data)));
  stream.addEventListener("answered", (e) => {
    const data = JSON.parse(e.data);
    setState(data.call_id, words.card_answered + " " + who(data.answered_by), "answered");
  });
  stream.addEventListener("transferred", (e) => {
    const data = JSON.parse(e.data);
    setState(data.call_id, words.card_transferred + " " + who(data.to), "transferred");
  });
  stream.addEventListener("ended", (e) => {
    const data = JSON.parse(e.data);
    setState(data.call_id, words.card_ended + (data.outcome ? " (" + data.outcome + ")" : ""), "ended");
  });
})();
