//! A widget as the tests drive it: a WebSocket to `/widget/ws` from
//! murmur's own origin, JSON frames in and out, with bounded waits.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

use super::TestApp;

pub struct Widget {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Widget {
    pub async fn open(app: &TestApp, origin: &str) -> Result<Widget, u16> {
        let mut req = format!("ws://{}/widget/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        req.headers_mut().insert("Host", app.host().parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Widget { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    /// Connects and says hello; returns the widget and the first answer.
    pub async fn start(app: &TestApp, hello: Value) -> (Widget, Value) {
        let mut w = Widget::open(app, &app.origin()).await.expect("upgrade refused");
        w.send(hello).await;
        let first = w.next().await;
        (w, first)
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    /// The next JSON frame (pings and pongs skipped).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("no frame within 5 s")
                .expect("socket ended")
                .expect("socket error");
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["t"] != "pong" {
                        return v;
                    }
                }
                Message::Close(c) => return json!({"t": "closed", "code": c.map(|c| u16::from(c.code))}),
                _ => {}
            }
        }
    }

    /// The next JSON frame, pongs included (`None` if nothing came within 5 s).
    pub async fn next_any(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(c))) => {
                    return Some(json!({"t": "closed", "code": c.map(|c| u16::from(c.code))}))
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return Some(json!({"t": "closed"})),
            }
        }
    }

    /// Frames until one with `t` = `kind` (within 5 s in all); the frames before it.
    pub async fn wait_for(&mut self, kind: &str) -> Result<(Value, Vec<Value>), Vec<Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut before = vec![];
        loop {
            let next = tokio::time::timeout_at(deadline, self.next()).await;
            match next {
                Ok(v) if v["t"] == kind => return Ok((v, before)),
                Ok(v) if v["t"] == "closed" => {
                    before.push(v);
                    return Err(before);
                }
                Ok(v) => before.push(v),
                Err(_) => return Err(before),
            }
        }
    }

    /// Asserts nothing but pings arrives for a while.
    pub async fn quiet(&mut self, ms: u64) {
        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(ms), self.ws.next()).await {
            panic!("expected nothing, got {t}");
        }
    }

    /// Sends a ping and waits for the pong: everything sent before it has been handled.
    pub async fn sync(&mut self) {
        self.send(json!({"t": "ping"})).await;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await.unwrap().unwrap().unwrap();
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert!(v["t"] == "pong", "unexpected frame before pong: {v}");
                return;
            }
        }
    }
}
