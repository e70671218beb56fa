"""Quota and capacity: scans, forecasts, thresholds, quota alerts in, increase requests.

    ports.py     QuotaSource (the Quota API), MetricSource (Azure Monitor metrics),
                 QuotaStore (latest state + samples), RequestStore (one open request per quota)
    policy.py    the `quota:` section of pitcrew.yaml
    model.py     quota ids, readings, samples, states, requests
    forecast.py  Theil-Sen fit: days to exhaustion
    scan.py      read -> sample -> forecast -> evaluate -> notify -> request
    requests.py  increase requests: plan, claim, submit, follow, support text
    capacity.py  resource metrics with a capacity, read like quotas
    intake.py    Azure's quota alert and quota-error deployment failures, as kind `quota`
    api.py       /api/quota routes and the timers' entry points
"""
