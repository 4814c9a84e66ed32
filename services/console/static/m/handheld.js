// The handheld's pages: the network's state and what waits, forms that keep their action
// in the outbox (outbox.js) and send it when they can, photo previews, the voice note
// (MediaRecorder where there is one, a file otherwise) and the GPS point. Our own lines.
(() => {
  const outbox = window.gridloopOutbox;
  const words = JSON.parse(document.getElementById("m-words").textContent);
  const owner = document.body.dataset.subject;
  const $ = (q, root = document) => root.querySelector(q);
  const RETRY_MS = 20000;

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).catch(() => {});
  }

  // --- the network and what waits ----------------------------------------------------------
  const showNet = () => {
    const net = $("#net");
    net.classList.toggle("offline", !navigator.onLine);
    $("#net-state").textContent = navigator.onLine ? words.online : words.offline;
  };
  const showWaiting = async () => {
    const waiting = (await outbox.all()).filter((e) => e.owner === owner);
    const n = waiting.length;
    $("#waiting").textContent = n;
    $("#waiting-link").hidden = n === 0;
    const badge = $("#tab-waiting");
    if (badge) { badge.textContent = n; badge.hidden = n === 0; }
    document.querySelectorAll("article.task").forEach((card) => {
      const mine = waiting.some((e) => e.case_id === card.dataset.case && e.kind === card.dataset.task);
      $(".pending", card).hidden = !mine;
      $("details", card).hidden = mine;
    });
    if ($("#outbox")) await listOutbox(waiting);
  };
  outbox.onChange(showWaiting);
  const trySend = async () => {
    const how = navigator.onLine ? await outbox.flush() : "offline";
    document.body.dataset.outbox = how; // what the last try found: sent, offline, signin
    $("#sign-in").hidden = how !== "signin"; // the session ended: what waits, waits for it
  };
  window.addEventListener("online", () => { showNet(); trySend(); });
  window.addEventListener("offline", showNet);
  setInterval(() => { if (navigator.onLine) trySend(); }, RETRY_MS);

  // --- the outbox page ----------------------------------------------------------------------
  const when = (iso) => new Date(iso).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "medium" });
  const listOutbox = async (waiting) => {
    const list = $("#outbox");
    list.replaceChildren();
    if (!waiting.length) list.append(Object.assign(document.createElement("li"), { textContent: words.none }));
    for (const e of waiting) {
      const item = document.createElement("li");
      item.dataset.key = e.key;
      item.dataset.kind = e.kind;
      item.className = e.state;
      const about = e.fields.description || (e.case_id ? e.case_id.slice(0, 8) : "");
      const voices = e.files.filter((f) => (f.blob.type || "").startsWith("audio")).length;
      const files = [[words.photo, e.files.length - voices], [words.voice, voices]]
        .filter(([, n]) => n).map(([w, n]) => `${w} ${n}`).join(" · ");
      item.append(Object.assign(document.createElement("strong"), { textContent: `${words[e.kind] || e.kind} · ${about}` }),
                  Object.assign(document.createElement("p"), { className: "muted", textContent: `${words.made} ${when(e.made_at)}${files ? " · " + files : ""}` }));
      if (e.state === "refused") {
        item.append(Object.assign(document.createElement("p"), { className: "error", textContent: `${words.refused}: ${e.reason}` }));
        const discard = Object.assign(document.createElement("button"), { type: "button", textContent: words.discard });
        discard.addEventListener("click", () => outbox.remove(e.key).then(showWaiting));
        item.append(discard);
      }
      list.append(item);
    }
    const sent = $("#sent");
    sent.replaceChildren();
    for (const s of (await outbox.sent()).reverse()) {
      sent.append(Object.assign(document.createElement("li"), {
        textContent: `${words[s.kind] || s.kind} · ${(s.case_id || "").slice(0, 8)} · ${s.state} · ${when(s.sent_at)}`,
      }));
    }
  };
  // Signing out leaves no copy of the person's pages on the phone (what waits to be sent
  // stays: it is sent once they sign in again).
  $("#sign-out").addEventListener("submit", async (event) => {
    if (!window.caches) return;
    event.preventDefault();
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith("gridloop-handheld-")).map((n) => caches.delete(n)));
    event.target.submit();
  });
  const sendNow = $("#send-now");
  if (sendNow) sendNow.addEventListener("click", trySend);

  // --- forms: kept, then sent ---------------------------------------------------------------
  const photos = (form) => [...form.querySelectorAll("input[name=photo]")].flatMap((i) => [...i.files]);
  // The tabs' scripts add their forms' fields (`FIELDS`) and files (`FILES`: e.g. photos
  // before and after) by kind.
  const fieldsOf = {
    report: (form) => {
      const [kind, code] = form.elements["class"].value.split(":");
      return {
        kind, class_code: code, description: form.elements.description.value.trim(),
        point: { lon: Number(form.elements.lon.value), lat: Number(form.elements.lat.value) },
      };
    },
    verification: (form) => ({ confirmed: form.elements.confirmed.value === "true", note: form.elements.note.value.trim() || null }),
    check: (form) => ({ passed: form.elements.passed.value === "true", note: form.elements.note.value.trim() || null }),
  };
  const filesOf = {};
  window.gridloopForms = { fields: fieldsOf, files: filesOf, send: trySend, words };
  document.querySelectorAll("form[data-outbox]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const kind = form.dataset.outbox;
      const files = filesOf[kind] ? filesOf[kind](form) : photos(form);
      const voice = form.voiceNote || (form.elements.voice && form.elements.voice.files[0]);
      if (voice) files.push(voice);
      await outbox.keep(kind, fieldsOf[kind](form), files, owner, form.dataset.case);
      form.reset();
      form.voiceNote = null;
      form.querySelectorAll(".previews, .recorded").forEach((p) => p.replaceChildren());
      $("#saved").textContent = words.saved;
      trySend();
    });
  });

  // Photo previews: what will be sent, seen before it is.
  document.querySelectorAll("input[name=photo]").forEach((input) => {
    input.addEventListener("change", () => {
      const previews = $(".previews", input.form);
      previews.replaceChildren(...[...input.files].map((f) =>
        Object.assign(document.createElement("img"), { src: URL.createObjectURL(f), alt: `${words.photo}: ${f.name}` })));
    });
  });

  // --- the voice note -----------------------------------------------------------------------
  const recorder = $(".recorder");
  const AUDIO = ["audio/ogg;codecs=opus", "audio/mp4", "audio/webm;codecs=opus", "audio/webm"];
  if (recorder && window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    const type = AUDIO.find((t) => MediaRecorder.isTypeSupported(t));
    const fallback = [...recorder.closest("fieldset").querySelectorAll(".voice-file")];
    const offerFile = (yes) => fallback.forEach((f) => { f.hidden = !yes; });
    recorder.hidden = false;
    offerFile(false); // a recorder: the file input only where there is none
    const form = recorder.closest("form");
    let taking = null;
    $(".record", recorder).addEventListener("click", async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        const parts = [];
        taking = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
        taking.ondataavailable = (e) => parts.push(e.data);
        taking.onstop = () => {
          stream.getTracks().forEach((t) => t.stop());
          const ext = (taking.mimeType || "audio/webm").split(/[/;]/)[1];
          form.voiceNote = new File(parts, `voice.${ext === "mp4" ? "m4a" : ext}`, { type: taking.mimeType });
          $(".recorded", recorder).textContent = `${words.recorded} (${Math.round(form.voiceNote.size / 1024)} KB)`;
          $(".record", recorder).disabled = false;
          $(".stop", recorder).disabled = true;
        };
        taking.start();
        $(".record", recorder).disabled = true;
        $(".stop", recorder).disabled = false;
      } catch (e) {
        recorder.hidden = true; // no microphone (or refused): a file instead
        offerFile(true);
      }
    });
    $(".stop", recorder).addEventListener("click", () => taking && taking.state !== "inactive" && taking.stop());
  }

  // --- the GPS point: the device's, editable ------------------------------------------------
  const locate = $("#locate");
  const where = () => {
    const gps = $("#gps");
    if (!navigator.geolocation) { gps.textContent = words.no_gps; return; }
    gps.textContent = words.locating;
    navigator.geolocation.getCurrentPosition((p) => {
      $("#lon").value = p.coords.longitude.toFixed(6);
      $("#lat").value = p.coords.latitude.toFixed(6);
      gps.textContent = `± ${Math.round(p.coords.accuracy)} m`;
    }, () => { gps.textContent = words.no_gps; }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  };
  if (locate) {
    locate.addEventListener("click", where);
    if (!$("#lon").value) where();
  }

  showNet();
  showWaiting();
  trySend();
})();
