// Live: a queue follows the news of its cases (Server-Sent Events from /live) and shows
// them without a reload — the page is fetched again and its <main> swapped, at most a few
// times a second. Our own few lines: no library, nothing fetched from elsewhere.
(() => {
  const main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  let pending = null;
  const refresh = async () => {
    pending = null;
    const answer = await fetch(location.href, { credentials: "same-origin" });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.querySelector("main");
    if (fresh) main.innerHTML = fresh.innerHTML;
  };
  // Since the page's reads began: what changed before it listened is told too.
  const since = main.dataset.since ? `?since=${encodeURIComponent(main.dataset.since)}` : "";
  const news = new EventSource(`/live${since}`);
  news.addEventListener("changed", () => {
    if (!pending) pending = setTimeout(refresh, 200);
  });
})();
