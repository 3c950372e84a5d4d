/* murmur push service worker. Serve this file from your own site (for
   example at /murmur-sw.js) and pass its path to Murmur.init as
   `serviceWorker`. It shows the notifications murmur sends to people who
   are not on your site, and a click opens your page with the messenger
   open on that message. It keeps nothing and reads nothing else. */
self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {};
  }
  var title = typeof data.title === "string" && data.title ? data.title : "New message";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: typeof data.body === "string" ? data.body : "",
      tag: typeof data.tag === "string" ? data.tag : undefined,
      data: { url: typeof data.url === "string" ? data.url : "/" }
    })
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/";
  // Only your own site's pages (murmur sends the page the visitor subscribed on).
  var target;
  try {
    target = new URL(url, self.location.origin);
  } catch (e) {
    return;
  }
  if (target.origin !== self.location.origin) return;
  event.waitUntil(self.clients.openWindow(target.href));
});
