// The console's one script: small progressive touches; every page works without it.
(function () {
  "use strict";

  // Subject length hint, live as the editor types.
  document.querySelectorAll("input[data-hint-max]").forEach(function (input) {
    var hint = document.querySelector('[data-hint-for="' + input.id + '"]');
    var max = parseInt(input.getAttribute("data-hint-max"), 10);
    if (!hint) return;
    var update = function () {
      var n = input.value.length;
      hint.textContent = n + " of " + max + " characters" +
        (n > max ? ": longer subjects are cut short in most inboxes" : "");
      hint.classList.toggle("over", n > max);
    };
    input.addEventListener("input", update);
    update();
  });

  // Live delivery progress: poll the JSON every second until the send settles.
  var box = document.getElementById("progress");
  if (box) {
    var url = box.getAttribute("data-url");
    var set = function (selector, value) {
      var el = box.querySelector(selector);
      if (el) el.textContent = value;
    };
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) return;
          set('[data-field="status"]', p.status);
          set('[data-field="reason"]', p.reason || "");
          set('[data-field="done"]', p.done);
          set('[data-field="total"]', p.total);
          set('[data-field="percent"]', p.percent);
          set('[data-field="rate"]', p.rate === null ? "–" : p.rate);
          set('[data-field="eta"]', p.eta_seconds === null ? "–" : p.eta_seconds);
          Object.keys(p.counts).forEach(function (k) { set('[data-count="' + k + '"]', p.counts[k]); });
          var bar = box.querySelector("progress");
          if (bar) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
          box.setAttribute("data-status", p.status);
          box.setAttribute("data-percent", p.percent);
          if (p.running || p.status === "sending") setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    poll();
  }

  // An upload shows its progress, then a busy bar while the server imports; the
  // answer replaces the page, as the plain form post would.
  var form = document.getElementById("import-form");
  if (form && window.XMLHttpRequest && window.FormData) {
    form.addEventListener("submit", function (event) {
      var bar = form.querySelector("progress.upload");
      var xhr = new XMLHttpRequest();
      event.preventDefault();
      if (bar) { bar.hidden = false; bar.value = 0; }
      xhr.upload.addEventListener("progress", function (e) {
        if (!bar) return;
        if (e.lengthComputable && e.loaded < e.total) bar.value = Math.round(100 * e.loaded / e.total);
        else bar.removeAttribute("value");
      });
      xhr.addEventListener("load", function () {
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", function () { form.submit(); });
      xhr.open("POST", form.action);
      xhr.send(new FormData(form));
    });
  }
})();
