// taskflow dashboard: live refresh, nothing else. Every page works without it.
// Every few seconds the page is fetched again and each region marked data-live is replaced
// by its new copy; a region holding the keyboard focus is left alone, and nothing is fetched
// while the tab is hidden or the refresh is switched off (the choice is kept per browser).
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  var KEY = "taskflow.live";
  var button = document.getElementById("live-toggle");
  var regions = document.querySelectorAll("[data-live][id]");
  if (!button || regions.length === 0) return;
  var on = window.localStorage.getItem(KEY) !== "off";
  var busy = false;

  function show() {
    button.hidden = false;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = "Live refresh: " + (on ? "on" : "off");
  }

  function refresh() {
    if (!on || busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (region) {
          var copy = fresh.getElementById(region.id);
          if (!copy || region.contains(document.activeElement)) return;
          if (region.innerHTML !== copy.innerHTML) region.innerHTML = copy.innerHTML;
        });
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { busy = false; });
  }

  button.addEventListener("click", function () {
    on = !on;
    window.localStorage.setItem(KEY, on ? "on" : "off");
    show();
  });
  show();
  window.setInterval(refresh, PERIOD_MS);
})();
