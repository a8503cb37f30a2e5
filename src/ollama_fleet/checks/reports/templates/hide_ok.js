// The "hide ok" filter of the check report. Only elements that carry data-status take part:
// checks, host cards, overview rows and exposure rows. Without this script nothing is hidden.
(function () {
  "use strict";
  var FRAGMENT = "#hide-ok";
  var box = document.getElementById("hide-ok");
  var control = document.getElementById("filter");
  var tally = document.getElementById("filter-count");
  var note = document.getElementById("all-ok-note");
  if (!box || !control) {
    return;
  }
  control.hidden = false;

  function apply() {
    var on = box.checked;
    var items = document.querySelectorAll("[data-status]");
    var checks = 0;
    var hosts = 0;
    for (var i = 0; i < items.length; i++) {
      var hide = on && items[i].getAttribute("data-status") === "ok";
      items[i].hidden = hide;
      if (hide && items[i].classList.contains("check")) {
        checks++;
      }
      if (hide && items[i].classList.contains("target")) {
        hosts++;
      }
    }
    document.documentElement.classList.toggle("hide-ok", on);
    if (tally) {
      tally.textContent = on ? hosts + " ok host(s), " + checks + " ok check(s) hidden" : "";
    }
    if (note) {
      note.hidden = !(on && document.querySelectorAll("section.target:not([hidden])").length === 0);
    }
  }

  box.checked = window.location.hash === FRAGMENT;
  box.addEventListener("change", function () {
    apply();
    try {
      var url = window.location.pathname + window.location.search;
      window.history.replaceState(null, "", box.checked ? url + FRAGMENT : url);
    } catch (e) {
      // some browsers refuse history changes on file:// pages; the filter works without
    }
  });
  window.addEventListener("hashchange", function () {
    // only the filter's own fragment turns it on: following a link to a host must not
    if (window.location.hash === FRAGMENT && !box.checked) {
      box.checked = true;
      apply();
    }
  });
  apply();
})();
