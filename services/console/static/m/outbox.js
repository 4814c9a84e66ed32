// The handheld's outbox (待发送): what a person does is kept on the device (IndexedDB) and
// sent when the network is there, each action under the Idempotency-Key made when it was
// done, so an action sent twice (its answer lost) is one action at intake. Our own few
// lines: no library, nothing fetched from elsewhere.
//
// An entry: {key, kind, case_id?, fields, files: [{blob, name}], media: [ids uploaded so
// far], owner, made_at, state: "waiting" | "refused", reason?}. A file uploaded has its
// media id kept at once, so it is not uploaded again; if its answer was lost, intake
// answers the same bytes from the same person with the same upload.
(() => {
  const DB = "gridloop-handheld", OUTBOX = "outbox", SENT = "sent", KEEP_SENT = 20;
  // What the device sends, by kind: the console's call for it (null: not yet, the entry
  // waits, e.g. a piece of track before its patrol's clock-in was answered). Every kind is
  // here, whichever tab kept it: any page sends all that waits (an action kept on one tab
  // and sent from another, or from 待发送). `AFTER`: what the device must remember of an
  // answer (a patrol's id, by its clock-in's key, for its pieces and its clock-out).
  const PATROL_ID = (key) => `gridloop-patrol-id:${key}`;
  const patrolOf = async (e) => {
    const id = localStorage.getItem(PATROL_ID(e.fields.start));
    if (id) return id;
    const start = (await all()).find((w) => w.key === e.fields.start);
    return start && start.state === "waiting" ? null : "none"; // its clock-in refused: so is this
  };
  const patrolCall = (end) => async (e) => {
    const id = await patrolOf(e);
    return id && `/m/api/patrols/${encodeURIComponent(id)}/${end}`;
  };
  const KINDS = {
    report: () => "/m/api/reports",
    verification: (e) => `/m/api/cases/${encodeURIComponent(e.case_id)}/verification`,
    check: (e) => `/m/api/cases/${encodeURIComponent(e.case_id)}/check`,
    visit: () => "/m/api/visits",
    finding: (e) => `/m/api/visits/${encodeURIComponent(e.case_id)}/findings/${e.fields.index}/case`,
    selfhandling: () => "/m/api/self-handling",
    patrol_start: () => "/m/api/patrols",
    patrol_track: patrolCall("track"),
    patrol_end: patrolCall("end"),
  };
  const AFTER = {
    patrol_start: (e, done) => localStorage.setItem(PATROL_ID(e.key), done.patrol),
  };

  const opened = new Promise((resolve, reject) => {
    const asked = indexedDB.open(DB, 1);
    asked.onupgradeneeded = () => {
      asked.result.createObjectStore(OUTBOX, { keyPath: "key" });
      asked.result.createObjectStore(SENT, { keyPath: "key" });
    };
    asked.onsuccess = () => resolve(asked.result);
    asked.onerror = () => reject(asked.error);
  });

  const store = async (name, mode, work) => {
    const db = await opened;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const asked = work(tx.objectStore(name));
      tx.oncomplete = () => resolve(asked ? asked.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  };
  const all = async (name = OUTBOX) =>
    ((await store(name, "readonly", (s) => s.getAll())) || []).sort((a, b) =>
      a.made_at < b.made_at ? -1 : 1);
  const put = (entry, name = OUTBOX) => store(name, "readwrite", (s) => s.put(entry));
  const remove = (key) => store(OUTBOX, "readwrite", (s) => s.delete(key));

  // A key of the device's own: random, made when the person acts.
  const newKey = () => {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  const keep = async (kind, fields, files, owner, caseId) => {
    const entry = {
      key: newKey(), kind, case_id: caseId || null, fields, owner, media: [],
      // A file is a Blob, or {blob, field}: its media id goes to that field (a
      // self-handling's photos before and after), else to `media`.
      files: files.map((f) => (f instanceof Blob ? { blob: f, name: f.name || "voice" }
        : { blob: f.blob, name: f.blob.name || "photo", field: f.field })),
      made_at: new Date().toISOString(), state: "waiting",
    };
    await put(entry);
    changed();
    return entry;
  };

  const listeners = [];
  const changed = () => listeners.forEach((f) => f());

  const said = async (answer) => {
    try {
      const body = await answer.json();
      const detail = Array.isArray(body.detail) ? body.detail : [];
      return detail.map((d) => `${(d.loc || []).slice(-1)[0] || ""}: ${d.msg || ""}`).join("; ")
        || `${answer.status}`;
    } catch (e) { return `${answer.status}`; }
  };

  // Send what waits, oldest first; stop at the first sign the network or the session is
  // not there (the rest waits for the next try). Returns "sent", "offline" or "signin".
  // One sender at a time, across the person's open tabs too (Web Locks where there are).
  let flushing = null;
  const exclusive = () => (navigator.locks ? navigator.locks.request("gridloop-outbox", send) : send());
  const flush = () => (flushing ||= exclusive().finally(() => { flushing = null; changed(); }));

  const send = async () => {
    let me;
    try {
      const asked = await fetch("/m/api/me", { credentials: "same-origin", cache: "no-store" });
      if (asked.status === 401) return "signin";
      if (!asked.ok) return "offline";
      me = await asked.json();
    } catch (e) { return "offline"; }
    const headers = { "X-CSRF-Token": me.csrf };
    for (const entry of await all()) {
      if (entry.state !== "waiting" || entry.owner !== me.subject) continue;
      try {
        while (entry.media.length < entry.files.length) {
          const file = entry.files[entry.media.length];
          const form = new FormData();
          form.append("file", file.blob, file.name);
          const up = await fetch("/m/api/media", { method: "POST", body: form, headers, credentials: "same-origin" });
          if (up.status === 401) return "signin";
          if (up.status >= 500) return "offline";
          if (!up.ok) { await refuse(entry, await said(up)); break; }
          entry.media.push((await up.json()).media_id);
          await put(entry); // uploaded: never again
        }
        if (entry.state !== "waiting") continue;
        const fields = { ...entry.fields };
        entry.files.forEach((file, i) => {
          const field = file.field || "media";
          fields[field] = [...(fields[field] || []), entry.media[i]];
        });
        // A kind this version does not know (kept by another) waits, holding nothing up.
        const url = KINDS[entry.kind] && (await KINDS[entry.kind](entry));
        if (!url) continue; // waits for an earlier entry's answer
        const answer = await fetch(url, {
          method: "POST", credentials: "same-origin", body: JSON.stringify(fields),
          headers: { ...headers, "Content-Type": "application/json", "Idempotency-Key": entry.key },
        });
        if (answer.status === 401) return "signin";
        if (answer.status >= 500) return "offline";
        if (!answer.ok) { await refuse(entry, await said(answer)); continue; }
        const done = await answer.json();
        if (AFTER[entry.kind]) await AFTER[entry.kind](entry, done);
        await remove(entry.key);
        const about = done.case_id || done.visit_id || done.patrol || "";
        await put({ key: entry.key, kind: entry.kind, case_id: about, state: done.state || String(answer.status),
                    made_at: entry.made_at, sent_at: new Date().toISOString() }, SENT);
        await trimSent();
      } catch (e) {
        return "offline"; // the network went (or the answer was lost): sent again later
      }
    }
    return "sent";
  };

  const refuse = async (entry, reason) => {
    entry.state = "refused";
    entry.reason = reason;
    await put(entry);
  };

  const trimSent = async () => {
    const sent = await all(SENT);
    for (const old of sent.slice(0, Math.max(0, sent.length - KEEP_SENT))) {
      await store(SENT, "readwrite", (s) => s.delete(old.key));
    }
  };

  window.gridloopOutbox = {
    keep, all, put, remove, flush, newKey, KINDS, AFTER,
    sent: () => all(SENT),
    onChange: (f) => listeners.push(f),
  };
})();
