"""Load on a running `paris serve` (loopback only): CLIENTS threads send REQUESTS txt2img requests in all, each
with its own seed and a 2-step sampler, retrying after Retry-After on 429. Checks every answer: no 5xx, one image
per request, and info.all_seeds equal to the seed asked for (no lost or mixed-up responses). Prints one JSON line:
requests, 429s seen, 5xx, mix-ups, p50/p99 latency (s) of the answered requests, images/s, wall time.
Bounded in count (REQUESTS) and time (MAX_SECONDS: then the clients stop and the result says so).

Usage: python3 bench/serve_load.py URL CLIENTS REQUESTS MAX_SECONDS [STEPS (default 2)]
"""
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request

url, clients, total, max_seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
steps = int(sys.argv[5]) if len(sys.argv) > 5 else 2
assert url.startswith(("http://127.", "http://localhost", "http://[::1]")), "loopback only"
lock = threading.Lock()
next_seed = [0]
latencies, errors = [], {"5xx": 0, "mixed": 0, "429": 0, "other": 0}
start = time.time()


def take():
    with lock:
        if next_seed[0] >= total or time.time() - start > max_seconds:
            return None
        next_seed[0] += 1
        return next_seed[0] - 1


def client():
    while (seed := take()) is not None:
        body = json.dumps({"prompt": f"request {seed}", "seed": 1000 + seed, "steps": steps}).encode()
        t0 = time.time()
        while True:
            request = urllib.request.Request(url + "/sdapi/v1/txt2img", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=300) as r:
                    answer = json.load(r)
                break
            except urllib.error.HTTPError as e:
                if e.code == 429:
                    with lock:
                        errors["429"] += 1
                    time.sleep(float(e.headers.get("Retry-After", "1")))
                    continue
                with lock:
                    errors["5xx" if e.code >= 500 else "other"] += 1
                answer = None
                break
        if answer is None:
            continue
        info = json.loads(answer["info"])
        ok = len(answer["images"]) == 1 and info["all_seeds"] == [1000 + seed] \
            and base64.b64decode(answer["images"][0])[:4] == b"\x89PNG"
        with lock:
            latencies.append(time.time() - t0)
            if not ok:
                errors["mixed"] += 1


threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.time() - start
latencies.sort()
pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3) if latencies else None
print(json.dumps({"clients": clients, "steps": steps, "asked": total, "answered": len(latencies), "seen_429": errors["429"],
                  "5xx": errors["5xx"], "other_4xx": errors["other"], "mixed_up": errors["mixed"],
                  "p50_s": pick(0.5), "p99_s": pick(0.99), "images_per_s": round(len(latencies) / wall, 2),
                  "wall_s": round(wall, 1), "stopped_by_time": len(latencies) < total}))
