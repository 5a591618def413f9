"""Where the gateway's tasks spent their time between two scrapes of /metrics: for each phase of
mediagate_task_phase_duration_seconds (queue, provider, store) and for the whole request
(mediagate_http_request_duration_seconds of POST /v1), the share of tasks over 1, 2 and 4 ms.

    python3 phases.py before.txt after.txt
"""
import re
import sys


def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'(mediagate_task_phase_duration_seconds|mediagate_http_request_duration_seconds)_bucket\{(.*)\} (\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if m.group(1).startswith("mediagate_http") and labels.get("route") != "/v1":
            continue
        name = labels.get("phase", "request")
        out[(name, labels["le"])] = float(m.group(3))
    return out


a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
for phase in ["queue", "provider", "store", "request"]:
    total = b.get((phase, "+Inf"), 0) - a.get((phase, "+Inf"), 0)
    if total <= 0:
        continue
    over = []
    for le in ["0.001", "0.002", "0.004"]:
        under = b.get((phase, le), 0) - a.get((phase, le), 0)
        over.append(f">{float(le) * 1000:.0f}ms {100 * (total - under) / total:.2f}%")
    print(f"  {phase:<8} {int(total):>7} tasks: " + "  ".join(over))
