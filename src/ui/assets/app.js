// ktune ui: live updates, hover and brushing. The pages are complete
// without this script; it listens to the server's events and reloads the
// page's main part when its experiment changed (at most once a second),
// shows a trial's title beside the pointer, and lets a drag along a
// parallel-coordinates axis dim the lines outside the dragged range.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
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

  // Brushing: axis x (as drawn) -> [top, bottom] in chart units. Kept
  // across live refreshes.
  var brushes = {};
  function svgY(svg, e) {
    var pt = svg.createSVGPoint();
    pt.x = e.clientX;
    pt.y = e.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }
  function crossings(path) {
    var out = {};
    var re = /[ML](-?[\d.]+) (-?[\d.]+)/g;
    var m;
    while ((m = re.exec(path.getAttribute("d") || ""))) { out[m[1]] = +m[2]; }
    return out;
  }
  function applyBrushes(svg) {
    [].forEach.call(svg.querySelectorAll("rect.brush"), function (r) { r.remove(); });
    var keys = Object.keys(brushes);
    keys.forEach(function (x) {
      var r = document.createElementNS(NS, "rect");
      r.setAttribute("class", "brush");
      r.setAttribute("x", +x - 6);
      r.setAttribute("width", 12);
      r.setAttribute("y", brushes[x][0]);
      r.setAttribute("height", Math.max(1, brushes[x][1] - brushes[x][0]));
      svg.appendChild(r);
    });
    [].forEach.call(svg.querySelectorAll("path.line"), function (p) {
      var at = crossings(p);
      var keep = keys.every(function (x) {
        var y = at[x];
        return y !== undefined && y >= brushes[x][0] && y <= brushes[x][1];
      });
      p.classList.toggle("dim", !keep);
    });
  }
  // The drag in progress: {svg, axis, from}; one set of window listeners
  // for every chart, so live refreshes add none.
  var drag = null;
  function setupBrushing(svg) {
    var axes = [].map.call(svg.querySelectorAll("[data-x]"), function (g) { return g.getAttribute("data-x"); });
    svg.addEventListener("mousedown", function (e) {
      var p = svgY(svg, e);
      var axis = null;
      axes.forEach(function (x) { if (Math.abs(+x - p.x) < 12) { axis = x; } });
      if (axis === null) { return; }
      drag = { svg: svg, axis: axis, from: p.y };
      e.preventDefault();
    });
    applyBrushes(svg);
  }
  window.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    var y = svgY(drag.svg, e).y;
    brushes[drag.axis] = [Math.min(drag.from, y), Math.max(drag.from, y)];
    applyBrushes(drag.svg);
  });
  window.addEventListener("mouseup", function (e) {
    if (!drag) { return; }
    if (Math.abs(svgY(drag.svg, e).y - drag.from) < 3) { delete brushes[drag.axis]; }
    applyBrushes(drag.svg);
    drag = null;
  });
  function init() {
    [].forEach.call(document.querySelectorAll("svg.parallel"), setupBrushing);
  }
  init();

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
          if (fresh && main) {
            main.innerHTML = fresh.innerHTML;
            init();
          }
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
