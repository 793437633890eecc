// Stripe's browser tokenization for Paybridge's pages. Stripe.js (loaded just before this script)
// may not be given raw card numbers (PCI SAQ A), so the page's own card number, expiry and CVC
// inputs are hidden and Stripe's Card Element (an iframe of Stripe's) takes the card instead;
// tokenize() then answers the PaymentMethod's id ({token: "pm_..."}). A bank account (US ACH) is
// made into a PaymentMethod from the page's bank fields. The publishable key comes from this
// script's own tag (data-publishable-key).
(function () {
  "use strict";
  var tag = document.currentScript;
  var key = tag ? tag.getAttribute("data-publishable-key") : null;
  var stripe = null;
  var card = null;
  var mounted = false;
  var UNLOADED = "The card form could not load. Reload the page and try again.";

  // details.js (loaded after this script) reads the page's card inputs, which this script hides:
  // whatever it defines as window.PaybridgeDetails is kept, and card details are {} here (the
  // Card Element holds the card). Bank details are read as before.
  var readDetails = window.PaybridgeDetails;
  Object.defineProperty(window, "PaybridgeDetails", {
    configurable: true,
    get: function () {
      return function (kind) {
        if (kind !== "bank") return {};
        return readDetails ? readDetails(kind) : {};
      };
    },
    set: function (fn) { readDetails = fn; },
  });

  function hide(el) {
    if (!el) return;
    el.hidden = true;
    if (el.tagName === "INPUT") el.disabled = true;
  }

  // The Card Element in place of the card inputs; their label names it.
  function mountCard() {
    var number = document.getElementById("card-number");
    if (!number) return;
    var label = document.querySelector('label[for="card-number"]');
    var expiry = document.getElementById("card-expiry");
    var cvc = document.getElementById("card-cvc");
    var row = expiry && expiry.closest(".row");

    var host = document.createElement("div");
    host.id = "card-element";
    host.className = "card-element";
    host.setAttribute("role", "group");
    host.style.padding = ".75rem";
    host.style.border = "1px solid #8c959f";
    host.style.borderRadius = ".375rem";
    host.style.background = "#fff";
    var errors = document.createElement("p");
    errors.id = "card-element-errors";
    errors.className = "error";
    errors.setAttribute("role", "alert");
    number.insertAdjacentElement("afterend", host);
    host.insertAdjacentElement("afterend", errors);

    if (label) {
      label.id = label.id || "card-element-label";
      label.textContent = "Card details";
      label.removeAttribute("for");
      host.setAttribute("aria-labelledby", label.id);
      label.addEventListener("click", function () { if (card) card.focus(); });
    }
    hide(number);
    if (row) {
      hide(row);
    } else {
      [expiry, cvc].forEach(function (el) {
        hide(el);
        if (el) hide(document.querySelector('label[for="' + el.id + '"]'));
      });
    }
    [expiry, cvc].forEach(hide);

    if (typeof window.Stripe !== "function" || !key) {
      errors.textContent = UNLOADED;
      return;
    }
    try {
      stripe = window.Stripe(key);
      card = stripe.elements().create("card");
      card.mount(host);
      mounted = true;
    } catch (e) {
      errors.textContent = UNLOADED;
      return;
    }
    var form = host.closest("form");
    card.on("change", function (event) {
      errors.textContent = event.error ? event.error.message : "";
      // New card details: the page does not resend an earlier attempt's token.
      if (form) form.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountCard);
  } else {
    mountCard();
  }

  window.PaybridgeGateway = {
    tokenize: async function (details) {
      var result;
      if (details && (details.routing_number !== undefined || details.account_number !== undefined)) {
        if (!stripe) throw new Error(UNLOADED);
        result = await stripe.createPaymentMethod({
          type: "us_bank_account",
          us_bank_account: {
            routing_number: String(details.routing_number || "").replace(/\s+/g, ""),
            account_number: String(details.account_number || "").replace(/\s+/g, ""),
            account_holder_type: "individual",
          },
          billing_details: { name: details.account_holder || "" },
        });
      } else {
        if (!mounted) throw new Error(UNLOADED);
        result = await stripe.createPaymentMethod({ type: "card", card: card });
      }
      if (result.error) throw new Error(result.error.message || "The details were not accepted.");
      return { token: result.paymentMethod.id };
    },
  };
})();
