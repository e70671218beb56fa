# azd postdeploy hook (Windows). Same as postdeploy.sh: wire Event Grid subscriptions and the
# alert webhook once the functions exist, then never again.
$ErrorActionPreference = 'Stop'
$current = (azd env get-value PITCREW_WIRE_FUNCTION_ENDPOINTS 2>$null)
if ($current -eq 'true') {
  Write-Host 'pitcrew: function endpoints already wired'
  exit 0
}
Write-Host 'pitcrew: first deployment done; wiring Event Grid subscriptions and the alert webhook'
azd env set PITCREW_WIRE_FUNCTION_ENDPOINTS true
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
azd provision --no-prompt
exit $LASTEXITCODE
