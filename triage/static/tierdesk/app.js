// What every page needs that would otherwise be inline script, which the Content-Security-Policy refuses:
// htmx's settings, selects that submit their form when changed, buttons that dismiss their alert; and the mark
// on polls.
(function () {
  "use strict";
  // htmx runs nothing written in attributes (hx-on, event filters, js: values): without 'unsafe-eval' the
  // browser would refuse it anyway. Its indicator rules are in app.css instead of a <style> it would add, and
  // settling leaves the style attribute alone (htmx copies it with setAttribute, an inline style).
  htmx.config.allowEval = false;
  htmx.config.includeIndicatorStyles = false;
  htmx.config.attributesToSettle = ["class", "width", "height"];

  // A request made by polling ("every Ns") is not the agent's doing: it does not keep an idle session alive.
  document.addEventListener("htmx:configRequest", function (event) {
    var trigger = event.detail.elt.getAttribute ? event.detail.elt.getAttribute("hx-trigger") || "" : "";
    if (/^\s*every\s/.test(trigger)) event.detail.headers["X-Tierdesk-Poll"] = "true";
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches && field.matches("[data-submit-on-change]") && field.form) field.form.submit();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-dismiss]");
    if (!button) return;
    var box = button.closest(button.dataset.dismiss);
    if (box) box.remove();
  });
})();
