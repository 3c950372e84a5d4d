/* murmur widget loader. Runs in the customer's page: adds one isolated
   frame (murmur's messenger, in a closed shadow root) and the Murmur API.
   Calls queued by the install snippet before this file arrived are replayed.
   Messages to and from the frame are checked both ways: source window and
   origin. The host page's styles cannot reach the frame's content, and
   nothing here styles the host page. */
(function (w, d) {
  "use strict";
  var prev = w.Murmur || {};
  if (prev._loaded) return;
  var script = d.currentScript;
  var base = ((script && script.src) || "").replace(/\/widget\/loader\.js(\?.*)?$/, "");
  var origin;
  try {
    origin = new URL(base).origin;
  } catch (e) {
    return;
  }
  var JSONs = JSON.stringify, JSONp = JSON.parse;
  var frame = null, loaded = false, outbox = [], handlers = {}, mode = "closed";
  var SIZES = { closed: ["96px", "96px"], cards: ["384px", "0px"], open: ["400px", "min(720px, 100vh)"] };

  function plain(v) {
    // Only data crosses into the frame (no functions, no DOM nodes).
    try {
      return v === undefined ? undefined : JSONp(JSONs(v));
    } catch (e) {
      return undefined;
    }
  }

  function post(msg) {
    if (loaded) frame.contentWindow.postMessage(msg, origin);
    else if (outbox.length < 200) outbox[outbox.length] = msg;
  }

  function emit(name, data) {
    var list = handlers[name] || [];
    for (var i = 0; i < list.length; i++) {
      try {
        list[i](data);
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }
  }

  function size(m, h) {
    if (!frame) return;
    mode = m;
    var s = SIZES[m] || SIZES.closed, narrow = w.innerWidth < 480;
    var width = m === "open" && narrow ? "100vw" : s[0];
    var height = m === "open" ? (narrow ? "100vh" : s[1]) : m === "cards" ? Math.min(+h || 0, 2000) + "px" : s[1];
    frame.style.setProperty("width", width, "important");
    frame.style.setProperty("height", height, "important");
    frame.style.setProperty("max-height", "100vh", "important");
  }

  function mount(appId) {
    var host = d.createElement("murmur-widget");
    host.style.cssText =
      "all:initial!important;display:block!important;position:fixed!important;right:0!important;" +
      "bottom:0!important;width:0!important;height:0!important;z-index:2147483647!important;";
    var root = host.attachShadow ? host.attachShadow({ mode: "closed" }) : host;
    frame = d.createElement("iframe");
    frame.title = "Messages";
    frame.setAttribute("allow", "");
    frame.style.cssText =
      "all:initial!important;display:block!important;position:fixed!important;right:0!important;" +
      "bottom:0!important;border:0!important;background:transparent!important;color-scheme:normal!important;" +
      "visibility:visible!important;opacity:1!important;transform:none!important;z-index:2147483647!important;";
    size("closed");
    frame.src = base + "/widget/frame#" + encodeURIComponent(JSONs({ app: appId, origin: w.location.origin }));
    root.appendChild(frame);
    (d.body || d.documentElement).appendChild(host);
  }

  w.addEventListener("message", function (e) {
    if (!frame || e.source !== frame.contentWindow || e.origin !== origin) return;
    var m = e.data;
    if (!m || typeof m !== "object") return;
    if (m.t === "loaded") {
      loaded = true;
      for (var i = 0; i < outbox.length; i++) frame.contentWindow.postMessage(outbox[i], origin);
      outbox = [];
    } else if (m.t === "size") {
      size(m.mode, m.h);
    } else if (m.t === "event" && typeof m.name === "string") {
      emit(m.name, m.data);
    }
  });

  var api = {
    _loaded: true,
    init: function (o) {
      o = plain(o) || {};
      if (frame || typeof o.appId !== "string") return;
      mount(o.appId);
      post({ t: "init", o: o });
    },
    login: function (userId, jwt) {
      post({ t: "login", userId: plain(userId), jwt: plain(jwt) });
    },
    logout: function () {
      post({ t: "logout" });
    },
    track: function (name, props) {
      post({ t: "track", name: plain(name), props: plain(props) });
    },
    updateUser: function (user) {
      post({ t: "update", user: plain(user) });
    },
    open: function () {
      post({ t: "open" });
    },
    close: function () {
      post({ t: "close" });
    },
    on: function (name, fn) {
      if (typeof fn === "function") (handlers[name] = handlers[name] || []).push(fn);
    },
    off: function (name, fn) {
      var list = handlers[name] || [];
      for (var i = list.length - 1; i >= 0; i--) if (list[i] === fn) list.splice(i, 1);
    },
    isOpen: function () {
      return mode === "open";
    }
  };
  w.Murmur = api;
  var q = prev._q || [];
  for (var i = 0; i < q.length; i++) {
    var f = api[q[i][0]];
    if (typeof f === "function") f.apply(null, q[i][1] || []);
  }
})(window, document);
