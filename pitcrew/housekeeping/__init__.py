"""Housekeeping: the expiry sweep over secrets, keys and certificates (expiry, keys, certificates,
hygiene), and recovery readiness checks. Ports in ports.py, the policy in policy.py."""
