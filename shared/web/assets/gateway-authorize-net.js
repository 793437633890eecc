// Authorize.Net's browser tokenization for Paybridge's pages: the payer's card or bank details go
// from this browser to Authorize.Net through Accept.js (loaded just before this script), and only
// Accept.js's single-use token (opaqueData.dataValue) comes back to the page. The public values
// come from this script's own tag: data-api-login-id and data-client-key (the Public Client Key;
// the Transaction Key never leaves the server).
(function () {
  "use strict";
  var tag = document.currentScript;
  var apiLoginID = tag ? tag.getAttribute("data-api-login-id") : null;
  var clientKey = tag ? tag.getAttribute("data-client-key") : null;

  // Accept.js's own words for what went wrong ("Please provide valid credit card number.").
  function failure(response) {
    var messages = (response && response.messages && response.messages.message) || [];
    var text = messages.map(function (m) { return m.text; }).filter(Boolean).join(" ");
    return new Error(text || "The details were not accepted.");
  }

  function secureData(details) {
    var authData = { clientKey: clientKey, apiLoginID: apiLoginID };
    if (details.routing_number !== undefined || details.account_number !== undefined) {
      return {
        authData: authData,
        bankData: {
          accountNumber: String(details.account_number || "").replace(/\s+/g, ""),
          routingNumber: String(details.routing_number || "").replace(/\s+/g, ""),
          // Authorize.Net takes at most 22 characters of the holder's name.
          nameOnAccount: String(details.account_holder || "").slice(0, 22),
          accountType: "checking",
        },
      };
    }
    var month = String(details.exp_month || "");
    return {
      authData: authData,
      cardData: {
        cardNumber: String(details.card_number || "").replace(/[\s-]+/g, ""),
        month: month.length === 1 ? "0" + month : month,
        year: String(details.exp_year || ""),
        cardCode: String(details.cvc || ""),
      },
    };
  }

  window.PaybridgeGateway = {
    tokenize: function (details) {
      return new Promise(function (resolve, reject) {
        if (!window.Accept || typeof window.Accept.dispatchData !== "function") {
          reject(new Error("The payment form could not load. Reload the page and try again."));
          return;
        }
        if (!apiLoginID || !clientKey) {
          reject(new Error("Online payments are not set up for this organisation."));
          return;
        }
        window.Accept.dispatchData(secureData(details), function (response) {
          if (response && response.messages && response.messages.resultCode === "Ok" &&
              response.opaqueData && response.opaqueData.dataValue) {
            resolve({ token: response.opaqueData.dataValue });
          } else {
            reject(failure(response));
          }
        });
      });
    },
  };
})();
