// Cron builder: keeps the five field inputs and the raw "Cron expression" input in step.
// The preview itself comes from the server (htmx); this only mirrors what is typed.
(function () {
  "use strict";
  function setup() {
    var raw = document.querySelector("[data-cron-raw]");
    var parts = Array.prototype.slice.call(document.querySelectorAll("[data-cron-part]"));
    if (!raw || parts.length !== 5) { return; }

    function fromParts() {
      raw.value = parts.map(function (el) { return el.value.trim() || "*"; }).join(" ");
    }
    function fromRaw() {
      var fields = raw.value.trim().split(/\s+/);
      var plain = fields.length === 5 && fields[0].charAt(0) !== "@";
      parts.forEach(function (el, i) {
        el.value = plain ? fields[i] : "";
        el.disabled = !plain;  // 6 fields or an alias: the raw expression alone says it
      });
    }
    parts.forEach(function (el) { el.addEventListener("input", fromParts); });
    raw.addEventListener("input", fromRaw);
    fromRaw();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
