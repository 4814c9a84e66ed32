// 自处置: the class (only those the pack lets be fixed on the spot), what was done, photos
// before and after (each uploaded once; its media id goes to `before` or `after`), and the
// point; kept in the outbox and sent to intake's POST /self-handling under the device's key.
(() => {
  const forms = window.gridloopForms;
  const files = (form, field) => [...form.elements[field].files].map((blob) => ({ blob, field }));
  forms.fields.selfhandling = (form) => {
    const [kind, code] = form.elements["class"].value.split(":");
    return {
      kind, class_code: code, description: form.elements.description.value.trim(),
      note: form.elements.note.value.trim() || null,
      point: { lon: Number(form.elements.lon.value), lat: Number(form.elements.lat.value) },
    };
  };
  forms.files.selfhandling = (form) => [...files(form, "before"), ...files(form, "after")];
})();
