// The payment methods page: card or bank details go to the gateway's own tokenization script
// (never to Paybridge); only the single-use token is posted to the save API, with the authority
// the payer accepted (always for a bank account; for a card, when it may be charged later).
(function () {
  "use strict";
  var form = document.getElementById("save-form");
  if (!form) return;
  var statusLine = document.getElementById("pay-status");
  var button = form.querySelector("button[type=submit]");
  var field = function (id) { var el = document.getElementById(id); return el ? el.value.trim() : ""; };
  var checked = function (id) { var el = document.getElementById(id); return !!(el && el.checked); };
  var kind = function () { var c = form.querySelector("input[name=method]:checked"); return c ? c.value : "card"; };
  var needsAuthority = function () { return kind() === "bank" || checked("card-automatic"); };

  function show(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  function layout() {
    document.getElementById("card-fields").hidden = kind() !== "card";
    document.getElementById("bank-fields").hidden = kind() !== "bank";
    document.getElementById("card-terms").hidden = !checked("card-automatic");
    document.getElementById("signer").hidden = !needsAuthority();
  }
  form.querySelectorAll("input[name=method]").forEach(function (r) { r.addEventListener("change", layout); });
  document.getElementById("card-automatic").addEventListener("change", layout);


  async function save() {
    if (needsAuthority() && !checked("accept-authority")) {
      throw new Error("Accept the authority to save this " + (kind() === "bank" ? "bank account." : "card for later charges."));
    }
    var tokenized = await window.PaybridgeGateway.tokenize(window.PaybridgeDetails(kind()));
    var body = { token: tokenized.token, kind: kind(), make_default: checked("make-default") };
    if (field("nickname")) body.nickname = field("nickname");
    if (needsAuthority()) body.mandate = { signer_name: field("signer-name"), terms_version: form.dataset.termsVersion };
    var response = await fetch(form.dataset.saveUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    var answer = await response.json();
    if (response.status === 201 || response.status === 200) {
      window.location.assign(form.dataset.doneUrl + "?done=" + (response.status === 201 ? "saved" : "existing"));
      return;
    }
    show(answer.detail || answer.title || "The details were not saved.", true);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    show("Saving...", false);
    save().catch(function (error) {
      show(error && error.message ? error.message : "Something went wrong; try again.", true);
    }).finally(function () { button.disabled = false; });
  });
})();
