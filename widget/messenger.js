/* murmur messenger: runs inside the frame murmur serves (its own origin,
   with a CSP that allows no inline script). Talks to the host page only
   through postMessage (checked: the parent window, the host's origin) and to
   murmur over one WebSocket that reconnects and resumes. Text anyone typed
   is set with textContent; a card's body is the server's sanitised HTML. */
(function () {
  "use strict";
  // The socket protocol is defined in src/widget/socket.rs (ClientFrame,
  // SERVER_KINDS); a test there checks these two lists against it.
  // sends: hello track update seen clicked reply read push ping
  // receives: welcome card message pong error recall
  var cfg;
  try {
    cfg = JSON.parse(decodeURIComponent(location.hash.slice(1)));
  } catch (e) {
    return;
  }
  if (!cfg || typeof cfg.app !== "string" || typeof cfg.origin !== "string" || window.parent === window) return;
  var anc = location.ancestorOrigins;
  if (anc && anc.length && anc[0] !== cfg.origin) return;

  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };

  // Per-app storage in the frame's own origin (partitioned per host site).
  var key = "murmur:" + cfg.app + ":";
  var store = {
    get: function (k) { try { return localStorage.getItem(key + k); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem(key + k, v); } catch (e) {} },
    del: function (k) { try { localStorage.removeItem(key + k); } catch (e) {} }
  };
  function newDevice() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    var s = "";
    for (var i = 0; i < b.length; i++) s += ("0" + b[i].toString(16)).slice(-2);
    store.set("device", s);
    return s;
  }

  var device = store.get("device") || newDevice();
  var identity = null; // {userId, jwt}
  var profile = null; // givenName, surname, email, properties from init/updateUser
  var ws = null, open = false, live = false, welcomed = false, fatal = false;
  var retry = 0, timer = null, pingTimer = null, pongDue = null;
  var outbox = [];
  var items = {}; // id -> thread item
  var order = [];
  var since = null;
  var unread = 0;
  var lastRead = +(store.get("read") || 0);
  var shownCards = {};
  // Conversations: id -> {id, state, at, last, unread, card}. The thread
  // shows one (`view`), or NEW: a conversation not started yet (with the
  // card the user opened, `viewCard`, as its first item).
  var NEW = "";
  var convs = {};
  var view = NEW, viewCard = null, listing = false, quiet = false;
  var sentCard = null; // the card the last reply from NEW answered
  var pushKey = null; // the app's VAPID public key while push is on
  var pushAskDue = false; // a message sent before the key was known
  var openOn = null; // a card to open once welcomed (a push notification's click)

  function toHost(msg) {
    window.parent.postMessage(msg, cfg.origin);
  }
  function emit(name, data) {
    toHost({ t: "event", name: name, data: data });
  }

  // ---- layout -----------------------------------------------------------
  function resize() {
    var mode = open ? "open" : $("cards").childNodes.length ? "cards" : "closed";
    document.body.className = mode;
    var h = mode === "cards" ? $("cards").offsetHeight + 104 : 0;
    toHost({ t: "size", mode: mode, h: h });
  }

  function setBadge() {
    var b = $("badge");
    b.hidden = unread < 1;
    b.textContent = unread > 9 ? "9+" : String(unread);
    $("launcher").setAttribute("aria-label", unread ? "Open messages (" + unread + " unread)" : "Open messages");
  }

  function setOpen(v) {
    if (open === v) return;
    open = v;
    $("panel").hidden = !v;
    $("launcher").setAttribute("aria-expanded", String(v));
    if (v) {
      var ids = Object.keys(shownCards);
      for (var i = 0; i < ids.length; i++) dismiss(ids[i]);
      unread = 0;
      lastRead = Date.now();
      store.set("read", String(lastRead));
      setBadge();
      if (view === NEW && !viewCard) view = newest();
      show(view, viewCard);
      $("text").focus();
    }
    resize();
    emit(v ? "widget:opened" : "widget:closed");
  }

  // ---- rendering ----------------------------------------------------------
  function avatar(sender) {
    return el("span", "avatar", (sender && sender.initials) || "•");
  }

  function buttons(card, id) {
    var box = el("div", "buttons");
    (card.buttons || []).forEach(function (b) {
      var n;
      if (b.kind === "link" && /^https?:\/\//i.test(b.value)) {
        n = el("a", "button", b.label);
        n.href = b.value;
        n.target = "_blank";
        n.rel = "noopener noreferrer nofollow";
        n.addEventListener("click", function (e) {
          e.stopPropagation();
          send({ t: "clicked", id: id });
        });
      } else {
        n = el("button", "button", b.label);
        n.type = "button";
        n.addEventListener("click", function (e) {
          e.stopPropagation();
          send({ t: "clicked", id: id });
          openCard(id);
          if (view === NEW) sentCard = id;
          send({ t: "reply", text: b.value || b.label, card: id });
          askPush();
          setOpen(true);
        });
      }
      box.appendChild(n);
    });
    return box;
  }

  function body(card) {
    var n = el("div", "body");
    n.innerHTML = card.html || ""; // sanitised by murmur's template renderer
    return n;
  }

  function threadNode(it) {
    var li = el("li", "item " + (it.mine ? "mine" : "theirs"));
    li.dataset.id = it.id;
    if (!it.mine) li.appendChild(avatar(it.sender));
    var col = el("div", "col");
    if (!it.mine) col.appendChild(el("div", "sender", (it.sender && it.sender.name) || it.name || "The team"));
    var bubble = el("div", "bubble");
    if (it.card) {
      bubble.appendChild(body(it.card));
      col.appendChild(bubble);
      col.appendChild(buttons(it.card, it.id));
    } else if (!it.mine && typeof it.html === "string") {
      bubble.appendChild(body({ html: it.html })); // the team's light styling, sanitised by murmur
      col.appendChild(bubble);
    } else {
      bubble.textContent = it.text;
      col.appendChild(bubble);
    }
    li.appendChild(col);
    return li;
  }

  function scrollDown() {
    var t = $("thread");
    t.scrollTop = t.scrollHeight;
  }

  function add(it) {
    if (items[it.id]) return false;
    items[it.id] = it;
    var i = order.length;
    while (i > 0 && items[order[i - 1]].at > it.at) i--;
    order.splice(i, 0, it.id);
    if (inView(it) && !quiet) renderThread();
    return true;
  }

  // ---- conversations ------------------------------------------------------
  function convOf(it) {
    if (!it.card) return it.conversation || NEW;
    var ids = Object.keys(convs);
    for (var i = 0; i < ids.length; i++) if (convs[ids[i]].card === it.id) return ids[i];
    return null; // a card nobody answered yet
  }

  // NEW shows the card opened, else the cards no conversation answers yet.
  function inView(it) {
    if (view === NEW) return !!it.card && (viewCard ? it.id === viewCard : convOf(it) === null);
    return convOf(it) === view;
  }

  function renderThread() {
    var t = $("thread");
    t.textContent = "";
    for (var i = 0; i < order.length; i++) {
      var it = items[order[i]];
      if (inView(it)) t.appendChild(threadNode(it));
    }
    if (open) scrollDown();
  }

  // What the launcher opens: the newest conversation, unless a card nobody answered is newer.
  function newest() {
    var best = NEW, at = -1, ids = Object.keys(convs);
    for (var i = 0; i < ids.length; i++) if (convs[ids[i]].at > at) { at = convs[ids[i]].at; best = ids[i]; }
    var card = loneCard();
    if (card && items[card].at > at) return NEW;
    return best;
  }

  // The newest card no conversation answers.
  function loneCard() {
    for (var i = order.length - 1; i >= 0; i--) {
      var it = items[order[i]];
      if (it.card && convOf(it) === null) return it.id;
    }
    return null;
  }

  // Shows one conversation (or NEW, with the card that would start it); its team messages are read.
  function show(id, card) {
    view = id;
    viewCard = id === NEW ? card || null : null;
    listing = false;
    $("convs").hidden = true;
    $("thread").hidden = false;
    $("reply").hidden = false;
    $("title").textContent = "Conversation";
    renderThread();
    var c = convs[id];
    if (open && c && c.unread) {
      c.unread = 0;
      send({ t: "read", conversation: id });
      renderList();
    }
  }

  function renderList() {
    var ul = $("convlist");
    ul.textContent = "";
    var ids = Object.keys(convs).sort(function (a, b) { return convs[b].at - convs[a].at; });
    for (var i = 0; i < ids.length; i++) {
      var c = convs[ids[i]];
      var li = el("li", "conv" + (c.unread ? " unread" : ""));
      var b = el("button", null);
      b.type = "button";
      b.appendChild(el("span", "last", c.last || "Conversation"));
      b.appendChild(el("span", "when", new Date(c.at).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })));
      if (c.unread) b.appendChild(el("span", "dot", String(c.unread)));
      b.setAttribute("aria-label", (c.unread ? "Unread: " : "") + (c.last || "Conversation"));
      (function (id) {
        b.addEventListener("click", function () { show(id); $("text").focus(); });
      })(c.id);
      li.appendChild(b);
      ul.appendChild(li);
    }
    $("noconvs").hidden = ids.length > 0;
  }

  function showList() {
    listing = true;
    renderList();
    $("title").textContent = "Your conversations";
    $("convs").hidden = false;
    $("thread").hidden = true;
    $("reply").hidden = true;
  }

  function noteConv(m, mine) {
    var id = m.conversation;
    if (!id) return;
    var c = convs[id] || (convs[id] = { id: id, state: "open", at: 0, last: "", unread: 0, card: null });
    if (m.at >= c.at) {
      c.at = m.at;
      c.last = m.text;
    }
    if (mine) c.state = "open";
  }

  function showCard(it) {
    if (shownCards[it.id] || open) return;
    var c = el("div", "card");
    c.tabIndex = 0;
    c.setAttribute("role", "button");
    c.setAttribute("aria-label", "Message from " + it.card.sender.name + ": open the conversation");
    var head = el("div", "head");
    head.appendChild(avatar(it.card.sender));
    head.appendChild(el("span", "sender", it.card.sender.name));
    var x = el("button", "dismiss", "×");
    x.type = "button";
    x.setAttribute("aria-label", "Dismiss");
    x.addEventListener("click", function (e) {
      e.stopPropagation();
      dismiss(it.id);
      resize();
    });
    head.appendChild(x);
    c.appendChild(head);
    c.appendChild(body(it.card));
    c.appendChild(buttons(it.card, it.id));
    var openIt = function () {
      send({ t: "clicked", id: it.id });
      openCard(it.id);
      setOpen(true);
    };
    c.addEventListener("click", openIt);
    c.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.target === c) openIt();
    });
    shownCards[it.id] = c;
    $("cards").appendChild(c);
    resize();
    markSeen(it);
  }

  // A card is seen once it is on screen in a page the user is looking at:
  // one that arrives in a background tab is reported when the tab shows
  // (until then the team may still recall it).
  var unseen = [];
  function markSeen(it) {
    if (it.seen) return;
    if (document.visibilityState === "hidden") {
      if (unseen.indexOf(it.id) < 0) unseen.push(it.id);
      return;
    }
    it.seen = true;
    send({ t: "seen", id: it.id });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") return;
    var ids = unseen;
    unseen = [];
    for (var i = 0; i < ids.length; i++) if (items[ids[i]]) markSeen(items[ids[i]]);
  });

  // A card opens its conversation, or a new one that starts with it.
  function openCard(id) {
    var it = items[id];
    var c = it ? convOf(it) : null;
    if (c) show(c);
    else show(NEW, id);
  }

  function dismiss(id) {
    var c = shownCards[id];
    if (c && c.parentNode) c.parentNode.removeChild(c);
    delete shownCards[id];
  }

  // Cards the team recalled before the user saw them: gone from the screen and the thread.
  function recall(ids) {
    var changed = false;
    for (var i = 0; i < ids.length; i++) {
      var id = ids[i];
      dismiss(id);
      if (!items[id] || !items[id].card) continue;
      delete items[id];
      var at = order.indexOf(id);
      if (at >= 0) order.splice(at, 1);
      if (viewCard === id) viewCard = null;
      changed = true;
    }
    if (changed) renderThread();
    resize();
  }

  // A (re)starting widget is shown every card it may keep: one it had from
  // before that is no longer listed (and not older than the list) was recalled meanwhile.
  function forgetUnlisted(cards) {
    var listed = {}, oldest = Infinity;
    for (var i = 0; i < cards.length; i++) {
      listed[cards[i].id] = true;
      if (cards[i].at < oldest) oldest = cards[i].at;
    }
    var from = cards.length ? oldest : -Infinity, gone = [];
    for (var j = 0; j < order.length; j++) {
      var it = items[order[j]];
      if (it.card && !listed[it.id] && it.at >= from) gone.push(it.id);
    }
    if (gone.length) recall(gone);
  }

  function fromCard(f) {
    return { id: f.id, at: f.at, card: f.card, sender: f.card && f.card.sender, seen: f.seen, mine: false };
  }

  function fromMessage(m) {
    return { id: m.id, at: m.at, text: m.text, html: m.html, name: m.name, mine: m.role === "appUser",
             conversation: m.conversation || NEW };
  }

  function received(it, fresh) {
    if (items[it.id]) return;
    if (!it.card && it.conversation) {
      var c = convs[it.conversation];
      var known = !!c;
      noteConv({ conversation: it.conversation, at: it.at, text: it.text }, it.mine);
      c = convs[it.conversation];
      // The user's first message in a new conversation: it is now this one
      // (started by the card shown, if any).
      if (fresh && it.mine && view === NEW) {
        if (!known && sentCard) c.card = sentCard;
        sentCard = null;
        view = it.conversation;
        viewCard = null;
      }
      // A team message while closed: opening shows its conversation.
      if (fresh && !it.mine && !open) {
        view = it.conversation;
        viewCard = null;
      }
      if (fresh && !it.mine && (!open || view !== it.conversation || listing)) c.unread = (c.unread || 0) + 1;
      if (fresh && !it.mine && open && view === it.conversation && !listing) send({ t: "read", conversation: it.conversation });
      if (!add(it)) return;
      if (listing) renderList();
    } else if (!add(it)) return;
    if (!it.card && (since == null || it.at > since)) since = it.at;
    if (it.mine) return;
    if (it.card && !it.seen) {
      if (open) markSeen(it);
      else showCard(it);
    }
    if (!open && (fresh || it.at > lastRead)) {
      unread++;
      setBadge();
    }
    if (fresh) emit("message:received", { id: it.id, text: it.card ? body(it.card).textContent : it.text });
  }

  // ---- connection ---------------------------------------------------------
  function send(frame) {
    if (live && ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
    else if (outbox.length < 100) outbox.push(frame);
  }

  function status(text) {
    $("status").textContent = text || "";
  }

  function connect() {
    clearTimeout(timer);
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
    live = false;
    var url = location.origin.replace(/^http/, "ws") + "/widget/ws";
    var sock = (ws = new WebSocket(url));
    sock.onopen = function () {
      var hello = { t: "hello", app: cfg.app, device: device, platform: "web", since: since };
      if (identity) {
        hello.userId = identity.userId;
        hello.jwt = identity.jwt;
      }
      if (profile) {
        hello.user = profile;
        if (typeof profile.appVersion === "string") hello.appVersion = profile.appVersion;
      }
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = function (e) {
      var f;
      try {
        f = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      pongDue = null;
      onFrame(f);
    };
    sock.onclose = function (e) {
      live = false;
      clearInterval(pingTimer);
      if (fatal || e.code === 4400) return;
      retry = Math.min(retry + 1, 8);
      var wait = Math.min(30000, 300 * Math.pow(2, retry)) * (0.5 + Math.random() / 2);
      timer = setTimeout(connect, wait);
    };
  }

  // Office hours: whether the team is around, and when it is back.
  function presence(office) {
    var p = $("presence");
    if (!office) {
      p.textContent = "";
      return;
    }
    if (office.open) {
      p.textContent = "We're online";
      return;
    }
    var back = "";
    if (typeof office.back === "number") {
      var d = new Date(office.back);
      back = " — back " + d.toLocaleString([], { weekday: "long", hour: "2-digit", minute: "2-digit" });
    }
    p.textContent = "We're away" + back;
  }

  // Push: right after the user has sent a message (the click is theirs),
  // the host page may request permission and subscribe (the subscription
  // must be the customer's own origin's); it asks once per device.
  // A message sent before the welcome (which brings the key) asks when the
  // welcome arrives.
  function askPush() {
    if (pushKey) toHost({ t: "push-ask", key: pushKey });
    else pushAskDue = true;
  }

  function onFrame(f) {
    if (f.t === "welcome") {
      live = true;
      pushKey = typeof f.push === "string" ? f.push : null;
      // Already allowed on this site: the host page refreshes its
      // subscription (or asks, if a message went before the welcome).
      if (pushKey) toHost({ t: pushAskDue ? "push-ask" : "push-key", key: pushKey });
      pushAskDue = false;
      retry = 0;
      status("");
      presence(f.office);
      var cards = f.cards || [], msgs = f.messages || [], cl = f.conversations || [];
      for (var c = 0; c < cl.length; c++) {
        var x = cl[c];
        convs[x.id] = { id: x.id, state: x.state, at: x.at, last: x.last, unread: x.unread, card: x.card };
      }
      forgetUnlisted(cards);
      quiet = true;
      for (var i = 0; i < msgs.length; i++) received(fromMessage(msgs[i]), false);
      for (var j = 0; j < cards.length; j++) received(fromCard(cards[j]), false);
      quiet = false;
      if (view === NEW && !viewCard) view = newest();
      renderThread();
      if (openOn && items[openOn]) {
        openCard(openOn);
        setOpen(true);
      }
      openOn = null;
      var pending = outbox;
      outbox = [];
      for (var k = 0; k < pending.length; k++) send(pending[k]);
      clearInterval(pingTimer);
      pingTimer = setInterval(function () {
        if (pongDue && Date.now() > pongDue) {
          ws.close();
          return;
        }
        if (!pongDue) pongDue = Date.now() + 10000;
        send({ t: "ping" });
      }, 20000);
      if (!welcomed) {
        welcomed = true;
        emit("ready");
      }
    } else if (f.t === "card") {
      received(fromCard(f), true);
    } else if (f.t === "message") {
      received(fromMessage(f.message), true);
    } else if (f.t === "recall") {
      recall(f.ids || []);
    } else if (f.t === "error") {
      status(f.message);
      if (/^(identity_required|invalid_jwt|unknown_app|invalid_user|invalid_device|hello_expected)$/.test(f.code)) {
        fatal = true;
        emit("error", { code: f.code, message: f.message });
      }
    }
  }

  function reset() {
    items = {};
    order = [];
    convs = {};
    view = NEW;
    viewCard = null;
    since = null;
    unread = 0;
    setBadge();
    $("thread").textContent = "";
    var ids = Object.keys(shownCards);
    for (var i = 0; i < ids.length; i++) dismiss(ids[i]);
    resize();
  }

  // The card a reply answers: the one a new conversation starts with.
  function replyCard() {
    return view === NEW ? viewCard || loneCard() : null;
  }

  // ---- the host page --------------------------------------------------------
  window.addEventListener("message", function (e) {
    if (e.source !== window.parent || e.origin !== cfg.origin) return;
    var m = e.data;
    if (!m || typeof m !== "object") return;
    switch (m.t) {
      case "init":
        var o = m.o || {};
        var p = {};
        ["givenName", "surname", "email", "properties", "appVersion"].forEach(function (k) {
          if (o[k] !== undefined) p[k] = o[k];
        });
        profile = Object.keys(p).length ? p : null;
        identity = typeof o.userId === "string" ? { userId: o.userId, jwt: o.jwt } : null;
        connect();
        break;
      case "login":
        if (typeof m.userId !== "string") return;
        identity = { userId: m.userId, jwt: m.jwt };
        fatal = false;
        reset();
        connect();
        break;
      case "logout":
        identity = null;
        fatal = false;
        device = newDevice();
        store.del("read");
        reset();
        connect();
        break;
      case "track":
        if (typeof m.name === "string") send({ t: "track", name: m.name, props: m.props });
        break;
      case "update":
        if (m.user && typeof m.user === "object") send({ t: "update", user: m.user });
        break;
      case "open":
        if (typeof m.card === "string") openOn = m.card;
        setOpen(true);
        break;
      case "push-subscription":
        var sub = m.sub;
        if (!sub || typeof sub !== "object" || typeof sub.endpoint !== "string" || !sub.keys) return;
        send({ t: "push", endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth }, page: m.page });
        break;
      case "close":
        setOpen(false);
        break;
    }
  });

  $("launcher").addEventListener("click", function () {
    setOpen(!open);
  });
  $("close").addEventListener("click", function () {
    setOpen(false);
  });
  $("back").addEventListener("click", function () {
    if (listing) show(view, viewCard);
    else showList();
  });
  $("new").addEventListener("click", function () {
    show(NEW);
    $("text").focus();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && open) setOpen(false);
  });
  $("reply").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("text").value;
    if (!text.trim()) return;
    var frame = { t: "reply", text: text };
    var card = replyCard();
    if (card) frame.card = card;
    sentCard = card;
    if (view !== NEW) frame.conversation = view;
    send(frame);
    askPush();
    $("text").value = "";
  });
  $("text").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("reply").requestSubmit();
    }
  });
  setBadge();
  resize();
  toHost({ t: "loaded" });
})();
