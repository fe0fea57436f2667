// The portal's only script of its own. No inline handlers anywhere: the CSP forbids them.
"use strict";

// Forms marked data-warn-unsaved: a changed row is highlighted, and leaving warns until saved.
(function () {
  let dirty = false;

  document.addEventListener("change", function (event) {
    const form = event.target.closest("form[data-warn-unsaved]");
    if (!form) return;
    dirty = true;
    const row = event.target.closest("tr");
    if (row) row.classList.add("changed");
    const note = form.querySelector(".unsaved-note");
    if (note) note.hidden = false;
  });

  document.addEventListener("submit", function (event) {
    if (event.target.matches("form[data-warn-unsaved]")) dirty = false;
  });

  document.addEventListener("click", function (event) {
    const discard = event.target.closest("[data-discard]");
    if (discard && dirty && !window.confirm("Discard your unsaved changes?")) {
      event.preventDefault();
    } else if (discard) {
      dirty = false;
    }
  });

  window.addEventListener("beforeunload", function (event) {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });
})();

/* mappings & settings */
// A mapping's text box shows only for the choices that take a text (metadata key, custom field name, fixed
// text), labelled for the one chosen; and settings fields marked data-shown-when="name=value" (or "name" for a
// ticked checkbox, "name=a|b" for either) show only while their option is chosen. The server renders the
// first state and validates only what is shown.
(function () {
  function sourceText(select) {
    const option = select.selectedOptions[0];
    const box = select.nextElementSibling;
    if (!box || !box.matches("label.source-text")) return;
    const label = option && option.dataset.textLabel;
    box.hidden = !label;
    if (label) box.querySelector("[data-text-label]").textContent = label;
  }

  function shownWhen(form) {
    form.querySelectorAll("[data-shown-when]").forEach(function (element) {
      const [name, values] = element.dataset.shownWhen.split("=");
      const field = form.elements[name];
      let shown;
      if (!field) {
        shown = false;
      } else if (field.type === "checkbox") {
        shown = field.checked;
      } else {
        shown = values.split("|").includes(field.value);
      }
      element.hidden = !shown;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-source-select]")) sourceText(event.target);
    const form = event.target.closest("form");
    if (form && form.querySelector("[data-shown-when]")) shownWhen(form);
  });

  // A page restored from the back/forward cache keeps the choices made before: show what they need.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (form.querySelector("[data-shown-when]")) shownWhen(form);
    });
    document.querySelectorAll("select[data-source-select]").forEach(sourceText);
  });
})();

// A box that scrolls sideways (a wide table on a phone) takes the keyboard focus, so it can be scrolled
// without a mouse (WCAG 2.1.1); boxes that fit are left out of the tab order.
(function () {
  function reachable() {
    document.querySelectorAll(".overflow-auto, .table-scroll, main table").forEach(function (box) {
      const scrolls = box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== "visible";
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.tabIndex = 0;
        box.dataset.scrollBox = "";
      } else if (!scrolls && box.hasAttribute("data-scroll-box")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-box");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", reachable);
  document.addEventListener("htmx:afterSettle", reachable);
  window.addEventListener("resize", reachable);
})();
