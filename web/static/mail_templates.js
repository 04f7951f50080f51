// Live preview of a mail template while it is typed (web/mail_template_pages.py).
// Without JavaScript the page's "Preview" button does the same with a full page load.
(function () {
  "use strict";
  var textarea = document.getElementById("m-text");
  var target = document.getElementById("mail-preview");
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!textarea || !target || !meta || !window.fetch) {
    return;
  }
  var url = textarea.getAttribute("data-preview-url");
  var timer = null;
  var sent = 0;

  function refresh() {
    var mine = ++sent;
    var body = new URLSearchParams();
    body.set("text", textarea.value);
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRF-Token": meta.getAttribute("content")},
      body: body
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("preview failed: " + response.status);
      }
      return response.text();
    }).then(function (html) {
      if (mine === sent) {  // an older answer must not replace a newer one
        target.innerHTML = html;  // rendered and escaped by the server
      }
    }).catch(function () {
      if (mine === sent) {
        target.textContent = "The preview could not be updated; use the Preview button.";
      }
    });
  }

  textarea.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  });
}());
