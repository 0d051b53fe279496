// Progressive enhancement: a Copy button for the reveal-once panel. Without
// JavaScript the key is still selectable text.
document.querySelectorAll("button[data-copy]").forEach(function (btn) {
  btn.hidden = false;
  btn.addEventListener("click", function () {
    var text = document.getElementById(btn.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(function () {
      btn.textContent = "Copied";
    });
  });
});
