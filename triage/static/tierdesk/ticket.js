// The ticket page's composer: blanks highlighted as the agent types (and sending held while any remain), "start
// from the draft", the macro picker and its shortcuts, and the keyboard help. Static, because the
// Content-Security-Policy refuses inline script; everything is delegated from the document, so it keeps working
// after htmx swaps the ticket body.
(function () {
  "use strict";
  // The same pattern as triage/blanks.py: what the server refuses to send.
  const BLANK = /\[\[[^\[\]\n]{1,60}\]\]/g;

  function blanksIn(text) {
    return Array.from(new Set(text.match(BLANK) || []));
  }

  // The text as DOM nodes, each blank in a <mark>: built with text nodes, so nothing the agent types is parsed.
  function renderMarked(target, text) {
    target.replaceChildren();
    let position = 0;
    for (const match of text.matchAll(BLANK)) {
      target.append(document.createTextNode(text.slice(position, match.index)));
      const mark = document.createElement("mark");
      mark.className = "blank";
      mark.textContent = match[0];
      target.append(mark);
      position = match.index + match[0].length;
    }
    target.append(document.createTextNode(text.slice(position)));
  }

  function refreshBlanks(field) {
    const box = document.querySelector(field.dataset.blanksPreview);
    const send = document.querySelector(field.dataset.blanksSend);
    if (!box) return;
    const found = blanksIn(field.value);
    box.hidden = found.length === 0;
    const reason = box.querySelector("[data-blank-reason]");
    const preview = box.querySelector("[data-blank-preview]");
    if (found.length) {
      const why = `Fill in the highlighted blanks before sending: ${found.join(", ")}`;
      if (reason) reason.textContent = why;
      if (preview) renderMarked(preview, field.value);
      if (send) { send.disabled = true; send.title = why; send.setAttribute("aria-describedby", box.id); }
    } else if (send) {
      send.disabled = false;
      send.removeAttribute("title");
      send.removeAttribute("aria-describedby");
    }
  }

  function refreshAll() {
    document.querySelectorAll("textarea[data-blanks-preview]").forEach(refreshBlanks);
  }

  const composer = () => document.getElementById("composer-body");

  function insertAtCursor(field, text) {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? field.value.length;
    field.setRangeText(text, start, end, "end");
    field.focus();
    refreshBlanks(field);
    // The first blank is where the agent has to type next.
    const first = field.value.slice(start, start + text.length).search(BLANK);
    if (first >= 0) {
      const match = field.value.slice(start + first).match(BLANK);
      field.setSelectionRange(start + first, start + first + match[0].length);
    }
  }

  // --- The macro picker ---------------------------------------------------------------------------------
  const dialog = () => document.getElementById("macro-dialog");
  const options = () => Array.from(document.querySelectorAll("#macro-list [role=option]"));
  const visible = () => options().filter((o) => !o.hidden);
  let loaded = false;

  function activate(option) {
    options().forEach((o) => o.setAttribute("aria-selected", o === option ? "true" : "false"));
    const search = document.getElementById("macro-search");
    if (option) { search.setAttribute("aria-activedescendant", option.id); option.scrollIntoView({ block: "nearest" }); }
    else search.removeAttribute("aria-activedescendant");
  }

  function filter() {
    const words = document.getElementById("macro-search").value.toLowerCase().split(/\s+/).filter(Boolean);
    options().forEach((o) => { o.hidden = !words.every((w) => o.dataset.search.includes(w)); });
    const none = document.querySelector("#macro-list [data-no-match]");
    if (none) none.hidden = visible().length > 0 || options().length === 0;
    activate(visible()[0] || null);
  }

  async function openPicker() {
    const box = dialog();
    if (!box || box.open) return;
    const search = document.getElementById("macro-search");
    search.value = "";
    box.showModal();
    search.focus();
    if (!loaded) {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (!response.ok) return;
      // Our own server's partial, rendered with Django's escaping.
      document.getElementById("macro-list").innerHTML = await response.text();
      loaded = true;
    }
    filter();
  }

  async function choose(option) {
    if (!option) return;
    const response = await fetch(option.dataset.fillUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const filled = await response.json();
    dialog().close();
    const field = composer();
    if (field) insertAtCursor(field, filled.text);
  }

  // --- Events -------------------------------------------------------------------------------------------
  document.addEventListener("input", (event) => {
    if (event.target.matches("textarea[data-blanks-preview]")) refreshBlanks(event.target);
    if (event.target.id === "macro-search") filter();
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented) return;
    const target = event.target;
    if (target.id === "macro-search") {
      const all = visible();
      const at = all.findIndex((o) => o.getAttribute("aria-selected") === "true");
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const step = event.key === "ArrowDown" ? 1 : -1;
        if (all.length) activate(all[Math.min(all.length - 1, Math.max(0, at + step))]);
        event.preventDefault();
      } else if (event.key === "Enter") {
        event.preventDefault();
        choose(all[at] || null);
      }
      return;
    }
    // Ctrl+/ works even while typing in the reply: that is where a macro goes.
    if ((event.ctrlKey || event.metaKey) && event.key === "/") {
      event.preventDefault();
      openPicker();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog[open]")) {
      if (event.key === "Escape" && target.blur && !target.closest("dialog[open]")) target.blur();
      return;
    }
    if (event.key === "m") { event.preventDefault(); openPicker(); }
    else if (event.key === "?") { event.preventDefault(); document.getElementById("help-dialog").showModal(); }
  });

  document.addEventListener("click", (event) => {
    const el = event.target.closest ? event.target : event.target.parentElement;
    if (el.closest("[data-macro-open]")) { openPicker(); return; }
    if (el.closest("[data-help-open]")) { document.getElementById("help-dialog").showModal(); return; }
    const option = el.closest("#macro-list [role=option]");
    if (option) { choose(option); return; }
    const start = el.closest("[data-start-from-draft]");
    if (start) {
      const source = document.querySelector(start.dataset.startFromDraft);
      const field = composer();
      if (!source || !field) return;
      field.value = source.value;
      document.getElementById("composer-from-draft").value = start.dataset.draftId;
      const mode = document.getElementById("composer-mode");
      if (mode) mode.textContent = "Sent as the draft, approved with your changes (they are recorded).";
      field.focus();
      refreshBlanks(field);
    }
  });

  document.addEventListener("mousemove", (event) => {
    const option = event.target.closest && event.target.closest("#macro-list [role=option]");
    if (option && option.getAttribute("aria-selected") !== "true") activate(option);
  });

  document.addEventListener("htmx:afterSettle", refreshAll);
  document.addEventListener("DOMContentLoaded", refreshAll);
})();
