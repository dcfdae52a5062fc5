// reactor console: a little progressive enhancement. Every page works
// without it; it refreshes the overview and counts selections.
(function () {
  "use strict";

  // Overview: reload the numbers in place every data-refresh ms while the
  // tab is visible.
  var every = Number(document.body.dataset.refresh || 0);
  if (every > 0) {
    var busy = false;
    setInterval(function () {
      if (document.hidden || busy) return;
      busy = true;
      fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html");
          var live = next.getElementById("live"), clock = next.querySelector(".clock");
          if (live) document.getElementById("live").replaceWith(live);
          if (clock) document.querySelector(".clock").replaceWith(clock);
          document.body.dataset.refreshed = String(Date.now());
        })
        .catch(function () { /* keep the last numbers; try again next tick */ })
        .finally(function () { busy = false; });
    }, every);
  }

  // Dead letters: "select all on this page" and a count on the buttons.
  var form = document.getElementById("selection");
  if (form) {
    var boxes = form.querySelectorAll('input[name="seq"]');
    var all = form.querySelector("[data-select-all]");
    var update = function () {
      var n = form.querySelectorAll('input[name="seq"]:checked').length;
      form.querySelectorAll("[data-needs-selection]").forEach(function (b) {
        b.disabled = n === 0;
        b.querySelector(".count").textContent = n ? "(" + n + ")" : "";
      });
      if (all) all.checked = n > 0 && n === boxes.length;
    };
    if (all) all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }
})();
