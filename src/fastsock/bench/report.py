"""The benchmark's report: one dict with every run's figures (what --json
writes), the table and goals printed from it, and the chart."""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional, Sequence, TextIO

from fastsock.bench import streams
from fastsock.bench.workloads import GOALS, Goal, Workload

Runs = Dict[str, Dict[str, List[Dict[str, float]]]]


def spread(values: Sequence[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired(runs: Dict[str, List[Dict[str, float]]], side: str,
           against: Sequence[str], metric: str = "rate") -> Optional[List[float]]:
    """Per round: side's rate / the best rate of `against` in that round
    (for "p99_us", a latency: the best of theirs / side's); None when a
    side was not measured."""
    if side not in runs or not all(a in runs for a in against):
        return None
    if metric == "rate":
        return [mine["rate"] / max(runs[a][i]["rate"] for a in against)
                for i, mine in enumerate(runs[side])]
    return [min(runs[a][i][metric] for a in against) / mine[metric]
            for i, mine in enumerate(runs[side])]


def _goal(goal: Goal, runs: Runs, g9: Dict[str, Optional[float]]) -> Dict[str, Any]:
    checks = []
    for check in goal.checks:
        ratios = paired(runs.get(check.workload, {}), check.side, check.against, check.metric)
        entry: Dict[str, Any] = {"workload": check.workload, "side": check.side,
                                 "against": list(check.against), "goal": check.goal,
                                 "metric": check.metric, "ratio": None, "met": None}
        if ratios:
            entry["ratio"] = spread(ratios)
            entry["per_round"] = ratios
            entry["met"] = entry["ratio"]["median"] >= check.goal
        checks.append(entry)
    if goal.id == "G9" and g9.get("fastsock") is not None:
        checks.append({"workload": None, "side": "fastsock", "against": [], "goal": 1.0,
                       "syscalls_per_recv": g9["fastsock"],
                       "stdlib_syscalls_per_recv": g9.get("stdlib"),
                       "met": g9["fastsock"] == 1.0})
    measured = [c["met"] for c in checks if c["met"] is not None]
    if not measured:
        status = "not measured"
    elif not all(measured):
        status = "not met"
    elif len(measured) < len(checks) or not checks:
        status = "met where measured"
    else:
        status = "met"
    return {"id": goal.id, "text": goal.text, "status": status, "checks": checks}


def build(info: Dict[str, Any], plan: List[Workload], runs: Runs, rounds: int, quick: bool,
          g9: Dict[str, Optional[float]]) -> Dict[str, Any]:
    workloads = []
    for w in plan:
        sides = []
        for side in w.sides:
            figures = runs[w.id][side.key]
            entry: Dict[str, Any] = {"key": side.key, "label": side.label, "runs": figures,
                                     "rate": spread([f["rate"] for f in figures])}
            ratios = paired(runs[w.id], side.key, (side.versus,))
            if ratios and side.key != "stdlib":
                entry["ratio"] = dict(spread(ratios), versus=side.versus, per_round=ratios)
            sides.append(entry)
        workloads.append({"id": w.id, "title": w.title, "unit": w.unit,
                          "per_run": w.quick_n if quick else w.n, "notes": w.notes,
                          "goals": [g.id for g in GOALS
                                    if any(c.workload == w.id for c in g.checks)],
                          "sides": sides})
    measured = {w.id for w in plan}
    goals = [_goal(g, runs, g9) for g in GOALS
             if g.id == "G9" and g9 or any(c.workload in measured for c in g.checks)]
    return {"machine": info,
            "settings": {"rounds": rounds, "quick": quick, "measured_cpu": streams.MEASURED_CPU,
                         "peer_cpu": streams.PEER_CPU},
            "workloads": workloads, "goals": goals}


def _rate(value: float, unit: str) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _ratio(r: Dict[str, float]) -> str:
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


LEGEND = """\
How to read this:
  rate      the median of the {rounds} runs of that side, in the unit on the
            workload's line; (min-max) of those runs beside it.
  x stdlib  for each round, this side's rate divided by the stdlib rate of
            the same round (the first side; for fastsock-timeout, the rate of
            stdlib-timeout); the median of those per-round ratios, then their
            min-max.  The sides of one round run seconds apart and share the
            machine's state, so this is the ratio to trust; it need not equal
            the ratio of the two medians above it.
  p99       W6: the 99th percentile of the request latency the load
            generator saw, the median of the runs' figures.
  G1..G9    fastsock's goals judged on that row (G7p: W6p); each goal,
            its ratios (computed the same way) and met / not met are below.
  C         a plain C program (Berkeley API, -O2) doing the same work: what the
            kernel allows on this machine."""


def show(result: Dict[str, Any], out: TextIO) -> None:
    m, s = result["machine"], result["settings"]
    idle = m["idle_before"]
    print(f"fastsock {m['fastsock']} benchmark, {m['date']}", file=out)
    print(f"  machine: {m['cpu']}, {m['cores']} CPUs ({m['cores_usable']} usable), "
          f"{m['system']}", file=out)
    print(f"  Python:  {m['python']} ({m['python_build']})", file=out)
    print(f"  C:       {m.get('c_missing') or m['c_compiler']}", file=out)
    pins = (f"measured side on CPU {s['measured_cpu']}, peer on CPU {s['peer_cpu']}"
            if s["peer_cpu"] is not None else "one CPU, not pinned")
    rounds = f"{s['rounds']} round{'s' if s['rounds'] > 1 else ''}"
    print(f"  method:  {rounds}{' (--quick)' if s['quick'] else ''}, each side once "
          f"per round in turn; loopback; {pins}", file=out)
    if idle is not None:
        print(f"  load:    the CPUs were {idle:.0%} idle as the run began"
              f"{' (a busy machine: figures are noisy)' if idle < 0.7 else ''}", file=out)
    print(file=out)
    print(f"{'':4}{'side':18}{'code':40}{'rate':>15} {'(min-max)':>23}  {'x stdlib':24}",
          file=out)
    for w in result["workloads"]:
        amount = (f"{w['per_run']} s of load" if w["unit"] == "req/s"
                  else f"{w['per_run']:,}{' MiB' if w['unit'] == 'MB/s' else ''}")
        print(f"{w['id']:4}{w['title']}, {w['unit']} ({amount} per run)", file=out)
        for side in w["sides"]:
            rate = side["rate"]
            mm = f"({_rate(rate['min'], w['unit'])}-{_rate(rate['max'], w['unit'])})"
            ratio = _ratio(side["ratio"]) if "ratio" in side else ""
            tags = " ".join(g["id"] for g in result["goals"]
                            if any(c["workload"] == w["id"] and c["side"] == side["key"]
                                   for c in g["checks"]))
            print(f"{'':4}{side['key']:18}{side['label'][:39]:40}"
                  f"{_rate(rate['median'], w['unit']):>15} {mm:>23}  {ratio:24}{tags}", file=out)
            if "p99_us" in side["runs"][0]:
                p99 = statistics.median(run["p99_us"] for run in side["runs"])
                print(f"{'':22}{'p99 latency, us':40}{p99:>15,.0f}", file=out)
        for note in w["notes"]:
            print(f"{'':4}note: {note}", file=out)
    print(file=out)
    print(LEGEND.format(rounds=s["rounds"]), file=out)
    if not result["goals"]:
        return
    print(file=out)
    print("fastsock's goals (a report, not a test: on a shared or busy machine these "
          "ratios move):", file=out)
    for g in result["goals"]:
        print(f"  {g['id']:4}{g['status'].upper():20}{g['text']}", file=out)
        for c in g["checks"]:
            if "syscalls_per_recv" in c:
                print(f"{'':8}{c['syscalls_per_recv']:.2f} system calls per recv_into with a "
                      f"timeout (the stdlib: {c['stdlib_syscalls_per_recv']:.2f}), by strace",
                      file=out)
                continue
            vs = " or ".join(c["against"])
            what = (f"{c['workload']} {c['side']} / {vs}" if c["metric"] == "rate" else
                    f"{c['workload']} p99 latency {vs} / {c['side']}")
            if c["ratio"] is None:
                print(f"{'':8}{what:40} not measured (a side is missing)", file=out)
            else:
                print(f"{'':8}{what:40} {_ratio(c['ratio']):22} goal >= {c['goal']:.2f}  "
                      f"{'met' if c['met'] else 'not met'}", file=out)
        if g["id"] == "G9" and not g["checks"]:
            print(f"{'':8}not measured: strace is not installed", file=out)


def plot(result: Dict[str, Any], path: str) -> None:
    """A bar per side that has a ratio to the stdlib, whiskers min-max,
    on a log scale with the stdlib at 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels: List[str] = []
    medians: List[float] = []
    low: List[float] = []
    high: List[float] = []
    colors: List[str] = []
    goals: List[Optional[float]] = []     # the goal on the same ratio, where there is one
    palette = {"fastsock": "#1f77b4", "event": "#1f77b4", "c": "#7f7f7f"}
    for w in result["workloads"]:
        for side in w["sides"]:
            r = side.get("ratio")
            if not r:
                continue
            versus = f" / {r['versus']}" if r["versus"] != "stdlib" else ""
            labels.append(f"{w['id']} {side['key']}{versus}")
            medians.append(r["median"])
            low.append(r["median"] - r["min"])
            high.append(r["max"] - r["median"])
            colors.append(palette.get(side["key"].split("-")[0], "#2ca02c"))
            goals.append(next((c["goal"] for g in result["goals"] for c in g["checks"]
                               if c["workload"] == w["id"] and c["side"] == side["key"]
                               and c["against"] == [r["versus"]]
                               and c["metric"] == "rate"), None))
    fig, ax = plt.subplots(figsize=(7.5, 0.25 * len(labels) + 1.6), dpi=90)
    y = list(range(len(labels)))[::-1]
    # Bars grow from 1 (the stdlib) to the ratio, left for slower.
    ax.barh(y, [v - 1 for v in medians], left=1, xerr=[low, high], color=colors,
            capsize=2, height=0.7, error_kw={"elinewidth": 0.8})
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32)
                   if min(medians) / 2 < t < max(medians + [g or 1 for g in goals]) * 2])
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("x the stdlib in the same run (median of per-round ratios, whiskers min-max)",
                  fontsize=8)
    m = result["machine"]
    ax.set_title(f"fastsock {m['fastsock']}, {m['python']}, {m['cpu']}, "
                 f"{m['cores']} CPUs", fontsize=9)
    for yi, v, up in zip(y, medians, high):
        ax.text(max(v + up, 1.0), yi, f" {v:.2f}x", va="center", fontsize=7)
    marks = [(g, yi) for g, yi in zip(goals, y) if g is not None]
    ax.plot([g for g, _ in marks], [yi for _, yi in marks], linestyle="none", marker="|",
            markersize=11, markeredgewidth=2, color="#d62728")
    fig.legend(handles=[matplotlib.patches.Patch(color=c, label=t) for c, t in (
        ("#1f77b4", "fastsock"), ("#7f7f7f", "plain C"), ("#2ca02c", "other Python"))]
        + [matplotlib.lines.Line2D([], [], color="#d62728", marker="|", linestyle="none",
                                   markersize=9, markeredgewidth=2, label="goal")],
        fontsize=7, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    fig.savefig(path)
    plt.close(fig)
