// The console's only script: "select all" boxes, and a confirmation before a selection
// is acted on. Everything works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input.select-all").forEach(function (box) {
    box.addEventListener("change", function () {
      var form = box.closest("form");
      form.querySelectorAll("input[name=ids]").forEach(function (item) {
        item.checked = box.checked;
      });
    });
  });
  document.querySelectorAll("form#actions, form#parked-actions").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var chosen = form.querySelectorAll("input[name=ids]:checked").length;
      if (chosen === 0) {
        event.preventDefault();
        form.querySelector("input[name=ids]").focus();
      }
    });
  });
});
