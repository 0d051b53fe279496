// Progressive enhancement for buttons that need a script: Copy (a key, a
// snippet, the TOTP secret, recovery codes) and Print. The page renders
// them hidden, so without JavaScript they do not show; everything they act
// on is still there as selectable text.
(function () {
  "use strict";
  var status = document.createElement("p");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  document.body.appendChild(status);

  function say(btn, label, message) {
    var text = btn.querySelector(".copy-label") || btn;
    var before = btn.dataset.label || text.textContent;
    btn.dataset.label = before;
    text.textContent = label;
    status.textContent = message;
    clearTimeout(btn.timer);
    btn.timer = setTimeout(function () { text.textContent = before; }, 2500);
  }

  // selectText selects el's text, so the person can copy it by hand.
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    var el = document.getElementById(btn.dataset.copy);
    if (!el) return;
    btn.hidden = false;
    btn.addEventListener("click", function () {
      // A hidden element is the exact text to copy (the TOTP secret
      // without the spaces it is shown with); a shown one is copied as
      // it reads, one line per list item.
      var text = (el.hidden ? el.textContent : el.innerText).trim();
      var shown = el.hidden && btn.dataset.show ? document.getElementById(btn.dataset.show) : el;
      if (!navigator.clipboard) {
        selectText(shown);
        say(btn, "Press Ctrl+C", "Selected: press Control C to copy.");
        return;
      }
      navigator.clipboard.writeText(text).then(function () {
        say(btn, "Copied", "Copied to the clipboard.");
      }, function () {
        selectText(shown);
        say(btn, "Press Ctrl+C", "Could not copy: the text is selected, press Control C.");
      });
    });
  });

  document.querySelectorAll("button[data-print]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () { window.print(); });
  });
})();
