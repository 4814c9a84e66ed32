// Canned phrases (惯用语): a click puts the phrase in the note or reason it stands beside
// (after what is there already). Our own few lines; the form works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-phrase-for]");
  if (!button) return;
  const field = document.getElementById(button.dataset.phraseFor);
  if (!field) return;
  const text = button.textContent.trim();
  field.value = field.value.trim() ? `${field.value.trim()} ${text}` : text;
  field.focus();
});
