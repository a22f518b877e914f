// The queue's keyboard and selection. Rows are re-rendered by htmx every few seconds (live updates), so
// the current row and the ticked boxes are kept here by ticket id and put back after every swap.
(function () {
  "use strict";
  const checked = new Set();
  let current = sessionStorage.getItem("tierdesk.queue.current");

  const rows = () => Array.from(document.querySelectorAll("#queue-rows tr[data-ticket-id]"));
  const rowFor = (id) => document.querySelector(`#queue-rows tr[data-ticket-id="${CSS.escape(String(id))}"]`);

  function select(row) {
    rows().forEach((r) => { r.classList.remove("current"); r.removeAttribute("aria-current"); });
    if (!row) { current = null; return; }
    row.classList.add("current");
    row.setAttribute("aria-current", "true");
    current = row.dataset.ticketId;
    sessionStorage.setItem("tierdesk.queue.current", current);
    row.scrollIntoView({ block: "nearest" });
  }

  function restore() {
    rows().forEach((r) => {
      const box = r.querySelector("input[name=ticket]");
      if (box) box.checked = checked.has(r.dataset.ticketId);
    });
    select(current && rowFor(current) ? rowFor(current) : null);
    document.querySelectorAll("[data-testid=selected-count]").forEach((el) => { el.textContent = `${checked.size} selected`; });
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.findIndex((r) => r.dataset.ticketId === current);
    const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    select(all[next]);
  }

  function toast(level, message) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = `toast ${level}`;
    el.hidden = false;
    clearTimeout(el._timer);
    el._timer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  function act(action, ids, extra) {
    // Sent from the filter form, so the refreshed rows keep the agent's filters and page.
    const position = {};
    document.querySelectorAll("#queue-position input").forEach((i) => { if (i.value) position[i.name] = i.value; });
    const values = Object.assign({ action: action, ticket: ids }, position, extra || {});
    htmx.ajax("POST", document.getElementById("bulk").getAttribute("hx-post"), {
      source: "#filters", target: "#queue-rows", swap: "outerHTML", values: values,
    });
  }

  function selectedIds() {
    if (checked.size) return Array.from(checked);
    return current && rowFor(current) ? [current] : [];
  }

  function askReason() {
    return new Promise((resolve) => {
      const dialog = document.getElementById("reject-dialog");
      const input = dialog.querySelector("input[name=reason]");
      input.value = "";
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok" && input.value.trim() ? input.value.trim() : null);
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
  }

  document.addEventListener("keydown", async (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog[open]")) {
      if (event.key === "Escape" && target.blur) target.blur();
      return;
    }
    const row = current ? rowFor(current) : null;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter": if (row) window.location.href = row.dataset.href; else return; break;
      case "e": if (row) window.location.href = `${row.dataset.href}?edit=1`; else return; break;
      case "a": {
        const ids = selectedIds();
        if (!ids.length) return;
        act("approve", ids);
        break;
      }
      case "r": {
        const ids = selectedIds();
        if (!ids.length) return;
        event.preventDefault();
        const reason = await askReason();
        if (reason) act("reject", ids, { reason: reason });
        return;
      }
      case "t": { const ids = selectedIds(); if (ids.length) act("take", ids); else return; break; }
      case "x": {
        if (!row) return;
        const box = row.querySelector("input[name=ticket]");
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change", { bubbles: true }));
        break;
      }
      case "/": document.querySelector("#filters input[name=search]").focus(); break;
      case "?": document.getElementById("help-dialog").showModal(); break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches("#queue-rows input[name=ticket]")) {
      const id = box.value;
      if (box.checked) checked.add(id); else checked.delete(id);
      restore();
    } else if (box.matches("[data-select-all]")) {
      rows().forEach((r) => { if (box.checked) checked.add(r.dataset.ticketId); else checked.delete(r.dataset.ticketId); });
      restore();
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-help-open]")) document.getElementById("help-dialog").showModal();
    const row = event.target.closest("#queue-rows tr[data-ticket-id]");
    if (row && !event.target.closest("a, input")) select(row);
  });

  // The rows poll only while the page is in sight and no dialog is open (a swap under the reject dialog would
  // change the rows the agent is deciding about).
  document.addEventListener("htmx:confirm", (event) => {
    if (event.target.id !== "queue-rows") return;
    if (document.visibilityState !== "visible" || document.querySelector("dialog[open]")) event.preventDefault();
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    // A bulk action settled: the ticked boxes did their job.
    if (event.detail.requestConfig && event.detail.requestConfig.verb === "post") checked.clear();
    restore();
  });
  document.addEventListener("tierdesk:toast", (event) => toast(event.detail.level, event.detail.message));
  document.addEventListener("DOMContentLoaded", restore);
})();
