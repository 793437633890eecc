// What the payer typed into a page's card or bank fields, in the shape the gateway's tokenize()
// takes. Shared by the Pay Now page and the payment methods page (same field ids).
(function () {
  "use strict";
  window.PaybridgeDetails = function (kind) {
    var field = function (id) { var el = document.getElementById(id); return el ? el.value.trim() : ""; };
    if (kind === "bank") {
      return { routing_number: field("bank-routing"), account_number: field("bank-account"), account_holder: field("bank-holder") };
    }
    var exp = field("card-expiry").match(/^(\d{1,2})\s*\/?\s*(\d{2}|\d{4})$/);
    if (!exp) throw new Error("Enter the card's expiry as MM/YY.");
    var year = Number(exp[2]);
    return { card_number: field("card-number"), exp_month: Number(exp[1]), exp_year: year < 100 ? 2000 + year : year, cvc: field("card-cvc") };
  };
})();
