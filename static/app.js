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
