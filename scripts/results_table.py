#!/usr/bin/env python3
"""Writes the tables of docs/results.md from the eval/report.json of scripts/reproduce.sh's runs.

Runs are named <dataset>-<method>-s<seed> under --out. Table 1: mean ± standard deviation over seeds of every row
(routing strategy or the monolith). Table 2: the papers' claims as paired differences, computed per seed (the two
sides share the seed, the held-out prompts and the classifier) and then averaged, which removes most of the
seed-to-seed spread. Everything above the `<!-- reproduce.sh -->` marker is replaced; the commentary below it is kept.
Standard library only.
"""
import argparse
import json
import pathlib
import statistics

MARKER = "<!-- reproduce.sh -->"


def load(out):
    """{(dataset, method, seed): report}"""
    runs = {}
    for path in sorted(pathlib.Path(out).glob("*/eval/report.json")):
        dataset, method, seed = path.parent.parent.name.rsplit("-", 2)
        runs[(dataset, method, int(seed.lstrip("s")))] = json.load(open(path))
    return runs


def rows(report):
    """{row name: strategy result}"""
    return {s.get("name") or s["strategy"]: s for s in report["strategies"]}


def relative(path):
    """`path` relative to the working directory when it lies under it (the docs should not name our machine)."""
    p = pathlib.Path(path)
    try:
        return str(p.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return path


def router_accuracy(report):
    points = [p["accuracy"] for p in report.get("router", []) if p.get("accuracy") is not None]
    return sum(points) / len(points) if points else None


def stat(xs, digits):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    mean = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f} (n={len(xs)})"


# The text-conditioned router's rows are named "<strategy> (router-text)" by `paris eval --compare-router`.
TEXT = "router-text"
ORDER = ["top1", "top2", "full", "sample1", "oracle", "prompt", f"top1 ({TEXT})", f"top2 ({TEXT})", "monolith"]
TEXT_AWARE = {"prompt", f"top1 ({TEXT})", f"top2 ({TEXT})"}


def row_key(k):
    return (k[0], k[1], ORDER.index(k[2]) if k[2] in ORDER else 99, k[2])


def compared_router(report, name=TEXT):
    """The compared router whose folder is `name` (the text-conditioned one), or None."""
    return next((r for r in report.get("compared_routers", []) if pathlib.Path(r["folder"]).name == name), None)


def row_router_accuracy(report, row):
    """Mean accuracy over t of the router that routed `row` (None for rows no router routes)."""
    if row.get("strategy") in ("oracle", "prompt") or row["name"] == "monolith":
        return None
    if row.get("router"):
        other = compared_router(report, row["router"])
        points = [p["accuracy"] for p in (other or {}).get("points", [])]
        return sum(points) / len(points) if points else None
    return router_accuracy(report)


def summary_table(runs):
    cells = {}
    for (dataset, method, _), report in runs.items():
        for name, r in rows(report).items():
            c = cells.setdefault((dataset, method, name), {"fid": [], "fd": [], "acc": [], "router": [], "n": set()})
            c["fid"].append(r.get("fid"))
            c["fd"].append(r.get("classifier_fd"))
            c["acc"].append(r.get("prompt_accuracy"))
            c["router"].append(row_router_accuracy(report, r))
            c["n"].add(r.get("samples"))
    lines = ["| dataset | clusters | strategy or model | text-aware | samples | FID ↓ | classifier FD ↓ | "
             "prompt accuracy ↑ | router accuracy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, method, name) in sorted(cells, key=row_key):
        c = cells[(dataset, method, name)]
        label = "— (all data)" if name == "monolith" else method
        aware = "yes" if name in TEXT_AWARE else ""
        n = ", ".join(str(x) for x in sorted(x for x in c["n"] if x is not None))
        lines.append(f"| {dataset} | {label} | {name} | {aware} | {n} | {stat(c['fid'], 1)} | {stat(c['fd'], 2)} | "
                     f"{stat(c['acc'], 3)} | {stat(c['router'], 3)} |")
    return lines


def cost_table(runs):
    """Per row: experts and router evaluated per sample per step (counted from the weights used) and seconds per
    image, from the k-means runs."""
    cells = {}
    for (dataset, method, _), report in runs.items():
        if method != "kmeans":
            continue
        k = report["num_experts"]
        for name, r in rows(report).items():
            cost = r.get("cost")
            if not cost:
                continue
            c = cells.setdefault((dataset, method, name), {"e": [], "r": [], "s": [], "k": k})
            c["e"].append(cost["expert_evaluations_per_step"])
            c["r"].append(cost["router_evaluations_per_step"])
            c["s"].append(cost["seconds_per_image"])
    lines = ["| dataset | strategy or model | expert evaluations per sample per step | router evaluations per "
             "sample per step | sampling seconds per image |",
             "|---|---|---|---|---|"]
    for (dataset, method, name) in sorted(cells, key=row_key):
        c = cells[(dataset, method, name)]
        lines.append(f"| {dataset} | {name} | {stat(c['e'], 2)} of K = {c['k']} | {stat(c['r'], 2)} | "
                     f"{stat(c['s'], 3)} |")
    return lines


# (claim, left run method, left row, right run method, right row): difference = left − right in classifier FD,
# so a negative number means the left side is better (closer to the real held-out images).
CLAIMS = [
    ("sparse routing beats the full ensemble", "kmeans", "top1", "kmeans", "full"),
    ("top-2 beats the full ensemble", "kmeans", "top2", "kmeans", "full"),
    ("sampling one expert per step is worse than top-1", "kmeans", "top1", "kmeans", "sample1"),
    ("semantic clusters beat random shards (top-1)", "kmeans", "top1", "random", "top1"),
    ("semantic clusters beat random shards (full)", "kmeans", "full", "random", "full"),
    ("the learned router is close to oracle routing", "kmeans", "top1", "kmeans", "oracle"),
    ("the ensemble vs the compute-matched monolith (top-1)", "kmeans", "top1", "kmeans", "monolith"),
    ("the ensemble vs the compute-matched monolith (top-2)", "kmeans", "top2", "kmeans", "monolith"),
    ("the ensemble vs the compute-matched monolith (full)", "kmeans", "full", "kmeans", "monolith"),
    ("text-aware routing beats the text-free router (nearest caption centroid)", "kmeans", "prompt", "kmeans", "top1"),
    ("text-aware routing beats the text-free router (text-conditioned router)", "kmeans", f"top1 ({TEXT})",
     "kmeans", "top1"),
    ("text-aware routing closes the gap to oracle routing (nearest caption centroid)", "kmeans", "prompt",
     "kmeans", "oracle"),
    ("text-aware routing closes the gap to oracle routing (text-conditioned router)", "kmeans", f"top1 ({TEXT})",
     "kmeans", "oracle"),
    ("the decentralized ensemble matches the compute-matched monolith (nearest caption centroid)", "kmeans",
     "prompt", "kmeans", "monolith"),
    ("the decentralized ensemble matches the compute-matched monolith (text-conditioned router, top-1)", "kmeans",
     f"top1 ({TEXT})", "kmeans", "monolith"),
    ("the decentralized ensemble matches the compute-matched monolith (text-conditioned router, top-2)", "kmeans",
     f"top2 ({TEXT})", "kmeans", "monolith"),
]


def alignment(report):
    """(clusters whose own expert has the lowest x0 error, K, mean own-cluster error − mean other-cluster error)"""
    a = report.get("alignment") or {}
    errors = a.get("errors") or []
    k = len(errors)
    if k < 2:
        return None
    best = sum(1 for c in range(k) if errors[c][c] is not None
               and all(row[c] is None or errors[c][c] <= row[c] for row in errors))
    own = [errors[c][c] for c in range(k) if errors[c][c] is not None]
    other = [errors[r][c] for r in range(k) for c in range(k) if r != c and errors[r][c] is not None]
    return best, k, statistics.mean(own) - statistics.mean(other)


def router_table(runs):
    cells = {}
    def add(c, points):
        if points:
            c["mean"].append(sum(p["accuracy"] for p in points) / len(points))
            c["first"].append(points[0]["accuracy"])
            c["last"].append(points[-1]["accuracy"])
    for (dataset, method, _), report in runs.items():
        kind = report.get("router_kind") or "text-free"
        c = cells.setdefault((dataset, method, kind), {"mean": [], "first": [], "last": [], "best": 0, "k": 0,
                                                       "gap": []})
        add(c, report.get("router", []))
        other = compared_router(report)
        if other:  # the text-conditioned router, with the prompt and with the null caption
            add(cells.setdefault((dataset, method, f"{other['kind']}, with the prompt"),
                                 {"mean": [], "first": [], "last": [], "best": None}), other["points"])
            add(cells.setdefault((dataset, method, f"{other['kind']}, no prompt"),
                                 {"mean": [], "first": [], "last": [], "best": None}), other.get("unconditional") or [])
        a = alignment(report)
        if a:
            c["best"] += a[0]
            c["k"] += a[1]
            c["gap"].append(a[2])
    first = next(iter(runs.values())).get("router", [])
    t0 = f"{first[0]['t']:.2f}" if first else "first t"
    t1 = f"{first[-1]['t']:.2f}" if first else "last t"
    lines = [f"| dataset | clusters | router | accuracy (mean over t) | at t = {t0} | at t = {t1} | "
             "own expert best on its cluster | x0 error own − other cluster |",
             "|---|---|---|---|---|---|---|---|"]
    kinds = ["text-free", "text-conditioned", "text-conditioned, with the prompt", "text-conditioned, no prompt"]
    for (dataset, method, kind), c in sorted(cells.items(), key=lambda e: (e[0][0], e[0][1], kinds.index(e[0][2])
                                                                           if e[0][2] in kinds else 9)):
        experts = f"{c['best']} of {c['k']} | {stat(c['gap'], 4)}" if c["best"] is not None else "– | –"
        lines.append(f"| {dataset} | {method} | {kind} | {stat(c['mean'], 3)} | {stat(c['first'], 3)} | "
                     f"{stat(c['last'], 3)} | {experts} |")
    return lines


def claims_table(runs):
    datasets = sorted({d for d, _, _ in runs})
    seeds = sorted({s for _, _, s in runs})
    lines = ["| dataset | claim | compare | Δ FID | Δ classifier FD (left − right) | Δ prompt accuracy (left − right) | "
             "seeds where left is better (FD, accuracy) |",
             "|---|---|---|---|---|---|---|"]
    for dataset in datasets:
        for claim, lm, lr, rm, rr in CLAIMS:
            dfid, dfd, dacc, wins, acc_wins, n = [], [], [], 0, 0, 0
            for seed in seeds:
                left, right = runs.get((dataset, lm, seed)), runs.get((dataset, rm, seed))
                if not left or not right:
                    continue
                a, b = rows(left).get(lr), rows(right).get(rr)
                if not a or not b or a.get("classifier_fd") is None or b.get("classifier_fd") is None:
                    continue
                d = a["classifier_fd"] - b["classifier_fd"]
                dfd.append(d)
                if a.get("fid") is not None and b.get("fid") is not None:
                    dfid.append(a["fid"] - b["fid"])
                if a.get("prompt_accuracy") is not None and b.get("prompt_accuracy") is not None:
                    dacc.append(a["prompt_accuracy"] - b["prompt_accuracy"])
                    acc_wins += dacc[-1] > 0
                wins += d < 0
                n += 1
            if n == 0:
                continue
            compare = f"{lm} {lr} vs {rm} {rr}" if lm != rm else f"{lr} vs {rr}"
            lines.append(f"| {dataset} | {claim} | {compare} | {stat(dfid, 1)} | {stat(dfd, 2)} | {stat(dacc, 3)} | "
                         f"{wins}, {acc_wins} of {n} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/repro", help="the folder of the runs")
    ap.add_argument("--command", default="scripts/reproduce.sh", help="the command line to quote")
    ap.add_argument("--doc", default="docs/results.md")
    args = ap.parse_args()
    runs = load(args.out)
    if not runs:
        raise SystemExit(f"{args.out}: no */eval/report.json; run scripts/reproduce.sh first")
    any_report = next(iter(runs.values()))
    per_dataset = []
    for dataset in sorted({d for d, _, _ in runs}):
        report = next(r for (d, _, _), r in sorted(runs.items()) if d == dataset)
        c = report.get("classifier") or {}
        per_dataset.append(f"- {dataset}: {report['fid_reference']} held-out reference images, classifier of "
                           f"{c.get('classes', '?')} classes trained on {c.get('train_images', '?')} images "
                           f"(accuracy {c.get('held_out_accuracy', float('nan')):.3f} on the held-out images), "
                           f"`{relative(report.get('classifier_folder', '?'))}`.")
    lines = [
        "# Results: the papers' claims at the demo's scale",
        "",
        f"Written by `{args.command}` from the `eval/report.json` of {len(runs)} runs; rerun it to reproduce",
        "(the numbers depend on the machine's floating-point kernels, not on timing; the seconds per image do).",
        "",
        "Every run of a dataset is scored on the same held-out images (set aside before clustering; no expert, router",
        "or monolith trained on them) with one shared classifier per dataset, from the samples per row the table",
        f"gives ({any_report['steps']} Euler steps, CFG {any_report['guidance']:g}):",
        "",
        *per_dataset,
        "",
        "FID: TF-Inception (the papers' network, pool3 features, images upsampled to 299 px) against the held-out",
        "images, where the table has it. Classifier FD: Fréchet distance in that classifier's penultimate features",
        "between the samples and the held-out images (lower is better). Prompt accuracy: the share of samples the",
        "classifier puts in the class of their prompt's image (higher is better). Router accuracy: the accuracy, on",
        "held-out images and averaged over t, of the router that routed the row. Text-aware rows read the prompt to",
        "route: `prompt` sends it to the cluster of the nearest caption centroid, `(router-text)` rows are routed by",
        "the text-conditioned router p(k | x_t, t, prompt) trained on the same shards. Mean ± standard deviation over",
        "seeds.",
        "",
        "## Every row",
        "",
        *summary_table(runs),
        "",
        "## Cost per image",
        "",
        "Experts and router evaluated per sample at each sampling step, counted from the routing weights actually",
        "used (an expert evaluation is one CFG-guided velocity: a pass on the prompt and one on the null caption), and",
        "the measured sampling time per image in batches of 32 on the machine that ran the command.",
        "",
        *cost_table(runs),
        "",
        "## Routers and experts",
        "",
        "Router accuracy on the held-out images noised to t (chance = 1/K). Expert-data alignment: each expert's x0",
        "error on each cluster's held-out images; \"own expert best\" counts, over all seeds, the clusters whose own",
        "expert has the lowest error, and the last column is the mean error on the own cluster minus the mean on the",
        "others (negative = the experts specialised).",
        "",
        *router_table(runs),
        "",
        "## The claims, paired by seed",
        "",
        "Δ = left − right within one seed, then mean ± standard deviation over seeds; a negative Δ FD or a positive",
        "Δ accuracy favours the left side. The last column counts the seeds where the left side has the lower FD, and",
        "those where it has the higher prompt accuracy.",
        "",
        *claims_table(runs),
    ]
    path = pathlib.Path(args.doc)
    old = path.read_text() if path.exists() else ""
    tail = old.split(MARKER, 1)[1] if MARKER in old else "\n"
    path.write_text("\n".join(lines) + "\n\n" + MARKER + tail)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
