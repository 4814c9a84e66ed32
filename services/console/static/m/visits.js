// 走访: the visit form's fields (the doors picked, the findings, each made a case or a
// dispute where the person chose a class) and a finding of an earlier visit made a case.
// Kept in the outbox like every action (outbox.js), sent under the device's key.
(() => {
  const forms = window.gridloopForms;
  const point = () => ({ lon: Number(document.getElementById("lon").value), lat: Number(document.getElementById("lat").value) });
  const asCase = (value) => {
    const [kind, code] = value.split(":");
    return { kind, class_code: code };
  };
  forms.fields.visit = (form) => {
    const grid = form.elements.grid.value || (form.elements.grid[0] || {}).value;
    const doors = [...form.querySelectorAll(`fieldset[data-grid="${grid}"] input[name=household]:checked`)].map((i) => i.value);
    const findings = [...form.querySelectorAll("fieldset.finding")].flatMap((f) => {
      const type = f.querySelector("[name=type]").value, text = f.querySelector("[name=text]").value.trim();
      if (!type || !text) return [];
      const made = f.querySelector("[name=case]").value;
      return [{ type, text, ...(made ? { case: asCase(made) } : {}) }];
    });
    return { grid, at: new Date().toISOString(), households: doors, findings, point: point() };
  };
  forms.fields.finding = (form) => ({ index: Number(form.dataset.index), ...asCase(form.elements.case.value), point: point() });
  // No door picked: said beside the button, nothing kept (the grid service would refuse it).
  const visit = document.getElementById("visit");
  if (visit) {
    visit.addEventListener("submit", (event) => {
      const none = !visit.querySelector("input[name=household]:checked");
      document.getElementById("visit-error").hidden = !none;
      if (none) event.stopImmediatePropagation(), event.preventDefault();
    }, { capture: true });
  }
})();
