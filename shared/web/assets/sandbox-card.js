// The sandbox's test page: tokenize a test card and show the token.
(function () {
  "use strict";
  var form = document.getElementById("sandbox-form");
  var statusLine = document.getElementById("pay-status");
  var value = function (id) { return document.getElementById(id).value.trim(); };
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var exp = value("card-expiry").split("/");
    var year = Number(exp[1]);
    window.PaybridgeGateway.tokenize({
      card_number: value("card-number"), exp_month: Number(exp[0]),
      exp_year: year < 100 ? 2000 + year : year, cvc: value("card-cvc"),
    }).then(function (t) {
      statusLine.textContent = t.brand + " ending " + t.last4;
      document.getElementById("sandbox-token").textContent = t.token;
    }).catch(function (e) { statusLine.textContent = e.message; });
  });
})();
