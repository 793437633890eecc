// The sandbox gateway's browser tokenization (what Accept.js or Stripe.js is for a real
// gateway): details go to the gateway's endpoint and a single-use token comes back.
(function () {
  "use strict";
  window.PaybridgeGateway = {
    tokenize: async function (details) {
      var response = await fetch("/sandbox/tokens", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(details),
      });
      var answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || answer.title || "The details were not accepted.");
      return answer;
    },
  };
})();
