// murmur's demo page (server/demo.rs): installs the widget the way a
// customer's page does, signed in as the page's test user, and wires the
// page's controls to the widget's own API (updateUser, track).
(function (w, d) {
  "use strict";
  var cfg = JSON.parse(d.getElementById("murmur-demo").textContent);

  // The install snippet, as on a customer's page.
  var m = (w.Murmur = w.Murmur || { _q: [] });
  ["init", "login", "logout", "track", "updateUser", "open", "close", "on"].forEach(function (k) {
    m[k] = m[k] || function () { m._q.push([k, [].slice.call(arguments)]); };
  });
  var s = d.createElement("script");
  s.async = true;
  s.src = cfg.loader;
  d.head.appendChild(s);
  w.Murmur.init({ appId: cfg.appId, userId: cfg.userId, jwt: cfg.jwt });

  var log = d.getElementById("demo-log");
  function say(text) {
    var li = d.createElement("li");
    li.textContent = text; // typed by the teammate: text, never markup
    log.insertBefore(li, log.firstChild);
  }

  // "42" → 42, "true" → true; anything else stays text (dates as ISO text).
  function typed(v) {
    if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
    if (v === "true") return true;
    if (v === "false") return false;
    return v;
  }

  var rows = d.getElementById("demo-prop-rows");
  function addRow(name, value) {
    var row = d.createElement("div");
    row.className = "row";
    var n = d.createElement("input");
    n.placeholder = "name";
    n.value = name || "";
    n.setAttribute("aria-label", "Property name");
    n.className = "demo-prop-name";
    var v = d.createElement("input");
    v.placeholder = "value";
    v.value = value || "";
    v.setAttribute("aria-label", "Property value");
    v.className = "demo-prop-value";
    row.appendChild(n);
    row.appendChild(v);
    rows.appendChild(row);
  }
  addRow("", "");
  d.getElementById("demo-add-prop").addEventListener("click", function () { addRow("", ""); });

  d.getElementById("demo-props").addEventListener("submit", function (e) {
    e.preventDefault();
    var props = {};
    var names = rows.querySelectorAll(".demo-prop-name");
    var values = rows.querySelectorAll(".demo-prop-value");
    for (var i = 0; i < names.length; i++) {
      var k = names[i].value.trim();
      if (k) props[k] = typed(values[i].value.trim());
    }
    if (!Object.keys(props).length) return say("Enter a property name first.");
    w.Murmur.updateUser({ properties: props });
    say("Properties sent: " + JSON.stringify(props));
  });

  d.getElementById("demo-track").addEventListener("submit", function (e) {
    e.preventDefault();
    var name = d.getElementById("demo-event").value.trim();
    if (!name) return;
    w.Murmur.track(name);
    say("Tracked \u201c" + name + "\u201d");
  });
})(window, document);
