#!/bin/sh
# azd postdeploy hook. Event Grid validates an AzureFunction endpoint when a subscription is
# created, and the receive_alert function key exists only once the code runs, so the very first
# `azd provision` leaves both out (wireFunctionEndpoints=false). After the first deploy this hook
# turns the switch on, persists it in the azd environment, and provisions once more. Every later
# provision already has it on, and this hook then does nothing.
set -eu

current="$(azd env get-value PITCREW_WIRE_FUNCTION_ENDPOINTS 2>/dev/null || true)"
if [ "$current" = "true" ]; then
  echo "pitcrew: function endpoints already wired"
  exit 0
fi

echo "pitcrew: first deployment done; wiring Event Grid subscriptions and the alert webhook"
azd env set PITCREW_WIRE_FUNCTION_ENDPOINTS true
azd provision --no-prompt
