"""What the HTTP API (conveyor.http) and the dashboard (conveyor.dashboard) share, so
neither reaches into the other:

    settings.py   HttpSettings: tokens, users, secret key, limits (CONVEYOR_* variables)
    auth.py       bearer tokens, users and their scope (read / admin)
    passwords.py  argon2 password hashes for CONVEYOR_USERS
    guard.py      open mode's guard: foreign Host, cross-origin unsafe requests
    hub.py        the per-process event hub (live events for SSE, long polls, live blocks)
    problem.py    the problem+json answer
    keys.py       a job's keys as its client gave them
"""
