// ktune ui: live updates, hover and brushing. The pages are complete
// without this script; it listens to the server's events and reloads the
// page's main part when its experiment changed (at most once a second),
// shows a trial's title beside the pointer, and lets a drag along a
// parallel-coordinates axis dim the lines outside the dragged range and
// filter the trial table to it (server-side, through the `brush` query
// parameter, so paging and exports follow the selection), and follows a
// running trial's output.
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
  // When the main part was last reloaded (live refreshes wait a second).
  var last = 0;
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
    filterTable(drag.svg);
    drag = null;
  });

  // The brushed ranges in data units, as the server's `brush` parameter
  // reads them: {"params":{name:[lo,hi] or [categories]},"objective":[lo,hi]}.
  function brushValue(svg) {
    var out = { params: {} };
    var any = false;
    Object.keys(brushes).forEach(function (x) {
      var axis = svg.querySelector('[data-x="' + x + '"]');
      if (!axis) { return; }
      var y0 = brushes[x][0], y1 = brushes[x][1];
      var from = +axis.getAttribute("data-from"), to = +axis.getAttribute("data-to");
      var cats = axis.getAttribute("data-cats");
      var range;
      if (cats !== null) {
        var list = JSON.parse(cats);
        var n = Math.max(list.length, 2) - 1;
        range = list.filter(function (c, k) {
          var py = from + (to - from) * k / n;
          return py >= y0 && py <= y1;
        });
      } else {
        var lo = +axis.getAttribute("data-lo"), hi = +axis.getAttribute("data-hi");
        var log = axis.getAttribute("data-log") === "1";
        range = [y1, y0].map(function (y) {
          var v = lo + (y - from) / (to - from) * (hi - lo);
          return log ? Math.pow(10, v) : v;
        });
      }
      any = true;
      if (axis.getAttribute("data-objective") === "1") { out.objective = range; }
      else { out.params[axis.getAttribute("data-param")] = range; }
    });
    return any ? JSON.stringify(out) : null;
  }
  // Puts the selection in the address (so reloads, paging and exports keep
  // it) and reloads the page's main part: the server filters the table.
  function filterTable(svg) {
    var url = new URL(location.href);
    var value = brushValue(svg);
    if (value === null) { url.searchParams.delete("brush"); } else { url.searchParams.set("brush", value); }
    url.searchParams.delete("page");
    history.replaceState(null, "", url.toString());
    reloadTable();
  }
  // Replaces the trial table with a fresh one from the cheap trials page
  // (no charts rendered), its links pointed back at this page.
  function reloadTable() {
    var page = location.pathname.replace(/\/$/, "");
    var tablePath = page + "/trials";
    return fetch(tablePath + location.search, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("trials");
        var current = document.getElementById("trials");
        if (!fresh || !current) { return; }
        [].forEach.call(fresh.querySelectorAll("a[href], form[action]"), function (el) {
          var attr = el.hasAttribute("href") ? "href" : "action";
          var value = el.getAttribute(attr);
          if (value === tablePath || value.indexOf(tablePath + "?") === 0) {
            el.setAttribute(attr, page + value.slice(tablePath.length));
          }
        });
        current.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {});
  }
  function reload() {
    last = Date.now();
    return fetch(location.href, { headers: { "Accept": "text/html" } })
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
      .catch(function () {});
  }
  // A page opened with a selection in its address: draw it.
  function restoreBrushes(svg) {
    var text = new URL(location.href).searchParams.get("brush");
    var b;
    try { b = JSON.parse(text || "null"); } catch (err) { return; }
    if (!b) { return; }
    [].forEach.call(svg.querySelectorAll("[data-x]"), function (axis) {
      var range = axis.getAttribute("data-objective") === "1" ? b.objective : (b.params || {})[axis.getAttribute("data-param")];
      if (!range) { return; }
      var from = +axis.getAttribute("data-from"), to = +axis.getAttribute("data-to");
      var cats = axis.getAttribute("data-cats");
      var ys;
      if (cats !== null) {
        var list = JSON.parse(cats);
        var n = Math.max(list.length, 2) - 1;
        ys = range.map(function (c) { return from + (to - from) * list.indexOf(c) / n; });
        ys = [Math.min.apply(null, ys) - 4, Math.max.apply(null, ys) + 4];
      } else {
        var lo = +axis.getAttribute("data-lo"), hi = +axis.getAttribute("data-hi");
        var log = axis.getAttribute("data-log") === "1";
        ys = range.map(function (v) {
          var u = log ? Math.log(v) / Math.LN10 : v;
          return from + (u - lo) / (hi - lo) * (to - from);
        });
      }
      brushes[axis.getAttribute("data-x")] = [Math.min(ys[0], ys[1]), Math.max(ys[0], ys[1])];
    });
  }
  // Following a running trial's output: poll `…/log?offset=` once a
  // second and append what is new, keeping the view at the end when it
  // was there. Live refreshes replace the element; the timer then finds
  // the new one (and its offset).
  var following = null;
  function follow() {
    if (following) { return; }
    following = setInterval(function () {
      var pre = document.querySelector("pre.log[data-follow]");
      if (!pre) { clearInterval(following); following = null; return; }
      if (pre.getAttribute("data-busy") === "1") { return; }
      pre.setAttribute("data-busy", "1");
      var url = pre.getAttribute("data-follow") + "?offset=" + pre.getAttribute("data-offset");
      fetch(url, { cache: "no-store" })
        .then(function (r) {
          if (!r.ok) { throw new Error(r.status); }
          var next = r.headers.get("X-Log-Offset");
          return r.text().then(function (text) { return [text, next]; });
        })
        .then(function (got) {
          var atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
          if (got[0]) { pre.appendChild(document.createTextNode(got[0])); }
          if (got[1] !== null) { pre.setAttribute("data-offset", got[1]); }
          if (got[0] && atEnd) { window.scrollTo(0, document.body.scrollHeight); }
        })
        .catch(function () {})
        .then(function () { pre.removeAttribute("data-busy"); });
    }, 1000);
  }
  function init() {
    if (document.querySelector("pre.log[data-follow]")) { follow(); }
    [].forEach.call(document.querySelectorAll("svg.parallel"), function (svg) {
      if (Object.keys(brushes).length === 0) { restoreBrushes(svg); }
      setupBrushing(svg);
    });
  }
  init();

  if (!live || !window.EventSource) { return; }
  var pending = false;
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
      reload().then(function () { pending = false; });
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
