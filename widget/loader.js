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
  var swPath = null; // Murmur.init's serviceWorker: the customer's push worker
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
    } else if ((m.t === "push-ask" || m.t === "push-key") && typeof m.key === "string") {
      push(m.key, m.t === "push-ask");
    }
  });

  // ---- Web Push (in this page: the subscription belongs to its origin) ----
  function keyBytes(k) {
    var s = w.atob(k.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((k.length + 3) % 4));
    var b = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
    return b;
  }
  function sameKey(a, b) {
    if (!a) return false;
    a = new Uint8Array(a);
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  // ask: the user just sent a message in the messenger. Permission is
  // requested then, once per device (never again after a refusal or a
  // dismissal); otherwise an existing permission only refreshes the
  // subscription.
  function push(key, ask) {
    var N = w.Notification, nav = w.navigator;
    if (!swPath || !N || !w.PushManager || !nav.serviceWorker) return;
    var asked = false;
    try {
      asked = !!w.localStorage.getItem("murmur:push-asked");
    } catch (e) {}
    var granted;
    if (N.permission === "granted") granted = Promise.resolve("granted");
    else if (N.permission === "default" && ask && !asked) {
      try {
        w.localStorage.setItem("murmur:push-asked", "1");
      } catch (e) {}
      granted = new Promise(function (resolve) {
        var p = N.requestPermission(resolve);
        if (p && p.then) p.then(resolve);
      });
    } else return;
    var bytes;
    try {
      bytes = keyBytes(key);
    } catch (e) {
      return;
    }
    granted
      .then(function (p) {
        if (p !== "granted") return null;
        return nav.serviceWorker.register(swPath).then(function () {
          return nav.serviceWorker.ready;
        });
      })
      .then(function (reg) {
        if (!reg) return null;
        return reg.pushManager.getSubscription().then(function (old) {
          if (old && sameKey(old.options && old.options.applicationServerKey, bytes)) return old;
          var fresh = function () {
            return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes });
          };
          return old ? old.unsubscribe().then(fresh, fresh) : fresh();
        });
      })
      .then(function (sub) {
        if (sub) post({ t: "push-subscription", sub: plain(sub.toJSON ? sub.toJSON() : sub), page: w.location.href.split("#")[0] });
      })
      .catch(function () {});
  }

  var api = {
    _loaded: true,
    init: function (o) {
      o = plain(o) || {};
      if (frame || typeof o.appId !== "string") return;
      if (typeof o.serviceWorker === "string") swPath = o.serviceWorker;
      mount(o.appId);
      post({ t: "init", o: o });
      // A click on a push notification opens the page with this mark: the
      // messenger opens on that card's conversation.
      var mark = /^#murmur-open=([0-9a-zA-Z_-]{1,64})$/.exec(w.location.hash);
      if (mark) post({ t: "open", card: mark[1] });
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
