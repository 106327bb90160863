"""Flow control: rate limits, concurrency caps, RateLimited pauses, fair turns between
keys, and why a job is waiting; decided inside the backend's atomic claim.

spec.py      limit specs ("100/m", caps) and their algorithm, stated precisely
declare.py   what an app declares (queues, tasks, shared limiters) and each job's gates
api.py       the runtime API (``app.limits``) and storing declarations at worker start
why.py       the reasons a waiting job is not running
"""
