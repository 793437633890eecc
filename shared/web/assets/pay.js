// The Pay Now page: card or bank details go to the gateway's own tokenization script (never to
// Paybridge); only the single-use token is posted to the payment API, with an Idempotency-Key
// that a retry of the same attempt reuses, so a flaky network never charges twice.
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form) return;
  var statusLine = document.getElementById("pay-status");
  var button = form.querySelector("button[type=submit]");
  var field = function (id) { var el = document.getElementById(id); return el ? el.value.trim() : ""; };
  var kind = function () { var c = form.querySelector("input[name=method]:checked"); return c ? c.value : "card"; };
  // A signed-in payer's saved method, or null for new details.
  var saved = function () {
    var c = form.querySelector("input[name=saved]:checked");
    return c && c.value !== "new" ? c.value : null;
  };

  form.querySelectorAll("input[name=saved]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      document.getElementById("new-method").hidden = saved() !== null;
    });
  });

  function show(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  form.querySelectorAll("input[name=method]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      document.getElementById("card-fields").hidden = kind() !== "card";
      document.getElementById("bank-fields").hidden = kind() !== "bank";
    });
  });

  // An attempt whose answer never arrived: sent again as it was (same token, same key).
  var unanswered = null;
  form.addEventListener("input", function () { unanswered = null; });


  async function attempt() {
    if (!unanswered) {
      var body;
      if (saved()) {
        body = { method_id: saved() };
      } else {
        var tokenized = await window.PaybridgeGateway.tokenize(window.PaybridgeDetails(kind()));
        body = { token: tokenized.token };
      }
      var email = field("email");
      if (email) body.email = email;
      var amount = field("amount");
      if (amount) body.amount = amount;
      unanswered = { key: crypto.randomUUID(), body: JSON.stringify(body) };
    }
    var response = await fetch(form.dataset.payUrl, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": unanswered.key },
      body: unanswered.body,
    });
    unanswered = null;
    var answer = await response.json();
    if (response.status === 201) {
      window.location.assign(form.dataset.receiptBase + encodeURIComponent(answer.id));
      return;
    }
    show(answer.detail || answer.title || "The payment did not go through.", true);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    show("Processing your payment...", false);
    attempt().catch(function (error) {
      show(error && error.message ? error.message : "Something went wrong; nothing was charged twice. Try again.", true);
    }).finally(function () { button.disabled = false; });
  });
})();
