// ktune ui: live updates and hover. The pages are complete without this
// script; it only listens to the server's events and reloads the parts of
// the page that changed, at most once a second.
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var live = body.getAttribute("data-live") || "";
  var status = document.getElementById("live");

  // Hover: show the <title> of a trial mark beside the pointer.
  var tip = document.createElement("div");
  tip.id = "tip";
  body.appendChild(tip);
  document.addEventListener("mousemove", function (e) {
    var el = e.target.closest ? e.target.closest("[data-trial]") : null;
    var title = el && el.querySelector ? el.querySelector("title") : null;
    if (!title) { tip.style.display = "none"; return; }
    tip.textContent = title.textContent;
    tip.style.left = e.clientX + 12 + "px";
    tip.style.top = e.clientY + 12 + "px";
    tip.style.display = "block";
  });

  if (!live || !window.EventSource) { return; }
  var pending = false;
  var last = 0;
  function refresh() {
    if (pending) { return; }
    pending = true;
    var wait = Math.max(0, 1000 - (Date.now() - last));
    setTimeout(function () {
      // Someone typing in the filter form keeps their text: skip this one.
      var focused = document.activeElement;
      if (focused && /^(INPUT|SELECT|TEXTAREA)$/.test(focused.tagName)) {
        pending = false;
        return;
      }
      last = Date.now();
      fetch(location.href, { headers: { "Accept": "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("main");
          var main = document.getElementById("main");
          if (fresh && main) { main.innerHTML = fresh.innerHTML; }
        })
        .catch(function () {})
        .then(function () { pending = false; });
    }, wait);
  }
  var source = new EventSource(base + "/events");
  source.addEventListener("open", function () { status.textContent = "live"; });
  source.addEventListener("error", function () { status.textContent = "reconnecting…"; });
  source.addEventListener("change", function (e) {
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    if (live === "*" || data.experiment === "*" || data.experiment === live) { refresh(); }
  });
})();
