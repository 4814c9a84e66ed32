// 巡查: clock in inside my grid, the track in pieces while on patrol, clock out. Each is an
// outbox entry under the device's key; the patrol's id comes from the clock-in's answer
// (`AFTER` in outbox.js), so pieces and the clock-out made offline wait behind the
// clock-in. The patrol on (its clock-in key, grid, next piece, the fixes not yet in a
// piece) is kept in localStorage, per person: a reload or a closed page loses nothing taken.
(() => {
  const forms = window.gridloopForms, outbox = window.gridloopOutbox;
  const owner = document.body.dataset.subject, $ = (id) => document.getElementById(id);
  const STATE = `gridloop-patrol:${owner}`;
  const PIECE_FIXES = 10, PIECE_MS = 60000;
  const state = () => JSON.parse(localStorage.getItem(STATE) || "null");
  const save = (s) => (s ? localStorage.setItem(STATE, JSON.stringify(s)) : localStorage.removeItem(STATE));

  const point = () => ({ lon: Number($("lon").value), lat: Number($("lat").value) });
  const show = () => {
    const s = state();
    if (!$("on-patrol")) return;
    $("on-patrol").hidden = !s;
    $("off-patrol").hidden = !!s;
    if (!s) return;
    $("patrol-grid").textContent = s.grid;
    $("patrol-since").textContent = new Date(s.started).toLocaleString();
    $("patrol-fixes").textContent = s.fixes;
    $("patrol-pieces").textContent = s.seq;
  };
  // The fixes taken so far become a piece (under the next number) in the outbox.
  const piece = async () => {
    const s = state();
    if (!s || !s.buffer.length) return;
    await outbox.keep("patrol_track", { start: s.key, seq: s.seq, points: s.buffer }, [], owner);
    save({ ...s, seq: s.seq + 1, buffer: [] });
    show();
    forms.send();
  };
  let watching = null;
  const watch = () => {
    if (watching !== null || !navigator.geolocation || !state()) return;
    watching = navigator.geolocation.watchPosition((p) => {
      const s = state();
      if (!s) return;
      const fix = { lon: Number(p.coords.longitude.toFixed(6)), lat: Number(p.coords.latitude.toFixed(6)), at: new Date(p.timestamp).toISOString() };
      save({ ...s, fixes: s.fixes + 1, buffer: [...s.buffer, fix] });
      show();
      if (s.buffer.length + 1 >= PIECE_FIXES) piece();
    }, () => {}, { enableHighAccuracy: true, maximumAge: 10000 });
  };
  setInterval(piece, PIECE_MS);

  const clockIn = $("clock-in-form");
  if (clockIn) clockIn.addEventListener("submit", async (event) => {
    event.preventDefault();
    const grid = clockIn.elements.grid.value || (clockIn.elements.grid[0] || {}).value;
    const entry = await outbox.keep("patrol_start", { grid, point: point() }, [], owner);
    save({ key: entry.key, grid, seq: 0, buffer: [], fixes: 0, started: entry.made_at });
    $("saved").textContent = forms.words.saved;
    show(); watch(); forms.send();
  });
  const clockOut = $("clock-out");
  if (clockOut) clockOut.addEventListener("click", async () => {
    const s = state();
    if (!s) return;
    await piece();
    await outbox.keep("patrol_end", { start: s.key, point: point() }, [], owner);
    if (watching !== null) navigator.geolocation.clearWatch(watching);
    watching = null;
    save(null);
    $("saved").textContent = forms.words.saved;
    show(); forms.send();
  });
  show(); watch();
})();
