// Baseline for `wsbench --target socketio`: a socket.io@4 server doing the
// widget's push without a database. Each connection joins the room of its
// user (`?user=<id>` in the handshake); a `track` emits one `card` to every
// socket in that room. WebSocket transport only, no compression: the same
// wire work as murmur's /widget/ws. Relay only: the reference for the
// cost of the push itself (bench/socketio-durable also stores what murmur
// stores).
//
// Like the widget's other frames: a `seen` is accepted and dropped (there
// is nothing to mark), a `ping` is answered with `pong`. `GET /gc` runs a
// full garbage collection (node --expose-gc) before the bench reads this
// process's RSS.
//
//   node --expose-gc server.js <port>     (or PORT=<port>; listens on 127.0.0.1)

"use strict";

const http = require("http");
const crypto = require("crypto");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || process.env.PORT || 3999);
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
    return;
  }
  if (req.url === "/gc") {
    if (typeof global.gc === "function") {
      global.gc();
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("collected");
    } else {
      res.writeHead(501, { "content-type": "text/plain" });
      res.end("start node with --expose-gc");
    }
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});

// A card shaped like murmur's card frame (sender, sanitised HTML with the
// first name or its fallback, two buttons), made per delivery.
function card(firstName) {
  return {
    id: crypto.randomBytes(12).toString("hex"),
    at: Date.now(),
    seen: false,
    card: {
      sender: { name: "Bench Owner", initials: "BO" },
      html: "<p>Hi " + escapeHtml(firstName || "there") + ", your <strong>cart</strong> is waiting.</p>",
      buttons: [
        { label: "Checkout", kind: "link", value: "https://shop.example/checkout" },
        { label: "I have a question", kind: "reply", value: "I have a question" },
      ],
    },
  };
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

io.on("connection", (socket) => {
  const user = String(socket.handshake.query.user || "");
  const firstName = socket.handshake.query.firstName;
  const room = "user:" + user;
  socket.join(room);
  socket.on("track", () => {
    io.to(room).emit("card", card(firstName));
  });
  socket.on("seen", () => {});
  socket.on("ping", () => socket.emit("pong"));
});

server.listen(port, "127.0.0.1", () => {
  console.log("listening on 127.0.0.1:" + port);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0));
}
