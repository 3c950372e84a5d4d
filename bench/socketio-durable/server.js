// Durable baseline for `wsbench --target socketio-durable`: the socket.io@4
// server of bench/socketio, plus what murmur stores per card, in SQLite
// (better-sqlite3, WAL, synchronous=FULL, as murmur opens its database):
//
// - a `track` stores an event row and a delivery row (state `sent`, the
//   rendered card), in tables shaped like murmur's `events` and
//   `deliveries` (migrations/sqlite/*.sql, with their indexes), then emits
//   the card, whose id is the delivery's id;
// - a `seen` marks that delivery seen (state `seen`, seen_at), as murmur
//   does for the widget's `seen` frame.
//
// Writes are batched per event-loop tick (group commit): the tracks and
// seens that arrive in one tick are written in one transaction (one fsync),
// and only then are that batch's cards emitted. better-sqlite3 is
// synchronous, so the commit runs on the event loop, as it would in a
// Node.js server built this way.
//
// Also: `ping` is answered with `pong` (the widget's heartbeat), `GET /gc`
// runs a full garbage collection (node --expose-gc) before the bench reads
// this process's RSS, and `GET /stats` tells the write batches so far.
//
//   node --expose-gc server.js <port> <database file>
//   (or PORT=<port> DB=<file>; listens on 127.0.0.1)

"use strict";

const http = require("http");
const crypto = require("crypto");
const Database = require("better-sqlite3");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || process.env.PORT || 3999);
const file = process.argv[3] || process.env.DB || "durable.db";
const APP_ID = "0123456789abcdef01234567";
// murmur's bench has one whisper per event name (a whisper reaches a user
// once, so a user's k-th track names event k); here, one whisper id per
// event name.
const whisperFor = (event) => "whisper:" + event;

const db = new Database(file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("foreign_keys = ON");
db.pragma("busy_timeout = 5000");
db.exec(`
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL,
    app_user_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    properties  TEXT
);
CREATE INDEX IF NOT EXISTS events_user ON events (app_user_id, created_at);
CREATE INDEX IF NOT EXISTS events_app_name ON events (app_id, name);
CREATE TABLE IF NOT EXISTS deliveries (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    whisper_id  TEXT NOT NULL,
    app_user_id TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'seen', 'clicked', 'replied', 'cancelled', 'failed')),
    rendered    TEXT NOT NULL,
    sent_at     INTEGER,
    seen_at     INTEGER,
    clicked_at  INTEGER,
    replied_at  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_once ON deliveries (whisper_id, app_user_id);
CREATE INDEX IF NOT EXISTS deliveries_user ON deliveries (app_user_id);
`);

const insertEvent = db.prepare(
  "INSERT INTO events (app_id, app_user_id, name, created_at, properties) VALUES (?, ?, ?, ?, NULL)"
);
// Once per whisper and user, like murmur's deliveries_once: a second track
// of the same event by the same user stores the event and sends no card.
const insertDelivery = db.prepare(
  `INSERT INTO deliveries (id, app_id, whisper_id, app_user_id, revision, state, rendered, sent_at, created_at)
   VALUES (?, ?, ?, ?, 1, 'sent', ?, ?, ?)
   ON CONFLICT (whisper_id, app_user_id) DO NOTHING`
);
const markSeen = db.prepare(
  "UPDATE deliveries SET state = 'seen', seen_at = ? WHERE id = ? AND app_user_id = ? AND state = 'sent'"
);

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

// The card's content, shaped like murmur's (sender, sanitised HTML with the
// first name or its fallback, two buttons).
function render(firstName) {
  return {
    sender: { name: "Bench Owner", initials: "BO" },
    html: "<p>Hi " + escapeHtml(firstName || "there") + ", your <strong>cart</strong> is waiting.</p>",
    buttons: [
      { label: "Checkout", kind: "link", value: "https://shop.example/checkout" },
      { label: "I have a question", kind: "reply", value: "I have a question" },
    ],
  };
}

// What arrived in this tick: tracks [{user, room, firstName, event}] and seens [{user, id}].
let tracks = [];
let seens = [];
let scheduled = false;
// Write batches so far (GET /stats): how many, and the largest.
const stats = { batches: 0, tracks: 0, seens: 0, largest: 0 };

const writeBatch = db.transaction((ts, ss, now) => {
  const out = [];
  for (const t of ts) {
    insertEvent.run(APP_ID, t.user, t.event, now);
    const id = crypto.randomBytes(12).toString("hex");
    const card = render(t.firstName);
    const whisper = whisperFor(t.event);
    const r = insertDelivery.run(id, APP_ID, whisper, t.user, JSON.stringify(card), now, now);
    if (r.changes === 1) out.push({ room: t.room, id, at: now, card });
  }
  for (const s of ss) markSeen.run(now, s.id, s.user);
  return out;
});

function flush() {
  scheduled = false;
  const ts = tracks;
  const ss = seens;
  tracks = [];
  seens = [];
  stats.batches++;
  stats.tracks += ts.length;
  stats.seens += ss.length;
  stats.largest = Math.max(stats.largest, ts.length + ss.length);
  let cards;
  try {
    cards = writeBatch(ts, ss, Date.now());
  } catch (e) {
    console.error("batch of " + ts.length + " tracks and " + ss.length + " seens failed: " + e.message);
    return;
  }
  for (const c of cards) {
    io.to(c.room).emit("card", { id: c.id, at: c.at, seen: false, card: c.card });
  }
}

function schedule() {
  if (!scheduled) {
    scheduled = true;
    // After the I/O callbacks of this tick: every frame read in this tick
    // joins the batch.
    setImmediate(flush);
  }
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  } else if (req.url === "/gc") {
    if (typeof global.gc === "function") {
      global.gc();
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("collected");
    } else {
      res.writeHead(501, { "content-type": "text/plain" });
      res.end("start node with --expose-gc");
    }
  } else if (req.url === "/stats") {
    const body = JSON.stringify(stats);
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  } else {
    res.writeHead(404);
    res.end();
  }
});

const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});

io.on("connection", (socket) => {
  const user = String(socket.handshake.query.user || "");
  const firstName = socket.handshake.query.firstName;
  const room = "user:" + user;
  socket.join(room);
  socket.on("track", (m) => {
    const event = m && typeof m.name === "string" && m.name.length > 0 ? m.name.slice(0, 128) : "bench-event";
    tracks.push({ user, room, firstName, event });
    schedule();
  });
  socket.on("seen", (m) => {
    if (m && typeof m.id === "string") {
      seens.push({ user, id: m.id });
      schedule();
    }
  });
  socket.on("ping", () => socket.emit("pong"));
});

server.listen(port, "127.0.0.1", () => {
  console.log("listening on 127.0.0.1:" + port + ", database " + file);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    try {
      db.close();
    } finally {
      process.exit(0);
    }
  });
}
