// The handheld's service worker: keeps the shell (its pages, style, scripts, icons) so the
// handheld opens and works without network. Pages: the network first (fresh tasks), the
// last copy when there is none. The device's calls (/m/api/) are never cached: the outbox
// keeps what waits. Nothing fetched from elsewhere.
const VERSION = "@VERSION@";
const CACHE = `gridloop-handheld-${VERSION}`;
const SHELL = [
  "/m/", "/m/report", "/m/outbox", "/m/visits", "/m/patrol", "/m/selfhandling",
  "/m/manifest.webmanifest", "/static/m/handheld.css", "/static/m/handheld.js",
  "/static/m/outbox.js", "/static/m/visits.js", "/static/m/patrol.js", "/static/m/selfhandling.js",
  "/static/m/icon-192.png", "/static/m/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("gridloop-handheld-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

const fresh = async (request) => {
  const cache = await caches.open(CACHE);
  try {
    const answer = await fetch(request);
    // A page as the person saw it (not a redirect to sign in): kept for offline use.
    if (answer.ok && !answer.redirected) await cache.put(request, answer.clone());
    return answer;
  } catch (e) {
    return (await cache.match(request, { ignoreSearch: true })) || (await cache.match("/m/")) || Response.error();
  }
};

const kept = async (request) => {
  const cache = await caches.open(CACHE);
  const found = await cache.match(request);
  if (found) return found;
  const answer = await fetch(request);
  if (answer.ok) await cache.put(request, answer.clone());
  return answer;
};

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/m/api/")) return;
  if (event.request.mode === "navigate" && url.pathname.startsWith("/m/")) {
    event.respondWith(fresh(event.request));
  } else if (url.pathname.startsWith("/static/m/")) {
    event.respondWith(kept(event.request));
  }
});
