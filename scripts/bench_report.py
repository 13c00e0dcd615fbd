"""The bench's report: the run's numbers as the text scripts/bench prints."""

from bench_load import KINDS, LABELS, NOT_THE_SYSTEM


def fmt_ms(us) -> str:
    return f"{us / 1000:.1f}" if us is not None else "–"


def fmt_s(seconds) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds is not None else "–"


def report(summary: dict) -> str:
    sections = (_header, _load, _gateway_cost, _kong_share, _settlement, _broker, _cpu, _warnings)
    return "\n".join(["", *(line for section in sections for line in section(summary)), ""])


def _header(summary: dict) -> list[str]:
    lines = [f"shop benchmark  {summary['when']}  ({summary['command']})"]
    mode = f"offered requests/s {summary['offered']}" if summary.get("offered") else "closed loop"
    lines.append(f"{summary['users']} concurrent users {summary['connections']}, {summary['duration']:.0f}s, {mode}")
    if summary.get("vacuum"):
        v = summary["vacuum"]
        lines.append(
            f"databases vacuumed first (autovacuum is {v['autovacuum']} here; dead outbox rows found: "
            f"{', '.join(f'{k} {n}' for k, n in v['outbox_dead_rows'].items()) or 'none'})"
        )
    return lines


def _load(summary: dict) -> list[str]:
    columns = f"{'via':<9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    lines = ["", f"{'':<20}{columns}  statuses"]
    for name, phase in summary["phases"].items():
        total = 0.0
        for kind in KINDS:
            r = phase["results"].get(kind)
            if not r:
                continue
            total += r["rps"]
            lat = r["latency_us"]
            statuses = " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))
            lines.append(
                f"{LABELS[kind]:<20}{name:<9}{r['rps']:>8.0f}{fmt_ms(lat['p50']):>9}{fmt_ms(lat['p95']):>9}"
                f"{fmt_ms(lat['p99']):>9}{fmt_ms(lat['max']):>9}{r['errors']:>8}  {statuses}"
                + "".join(f" {k}-errors:{v}" for k, v in r["socket_errors"].items() if v)
            )
        lines.append(f"{'all':<20}{name:<9}{total:>8.0f}")
    return lines


def _gateway_cost(summary: dict) -> list[str]:
    costs = summary.get("gateway_cost")
    if not costs:
        return []
    lines = [
        "",
        f"gateway cost: each request alone, {summary['cost_users']} users, closed loop, "
        f"{summary['cost_rounds']} x ({summary['cost_seconds']:.0f}s through the gateway + "
        f"{summary['cost_seconds']:.0f}s direct), alternating:",
        f"{'':<20}{'gateway req/s':>14}{'direct req/s':>14}{'cost':>8}{'CPU ms gw/direct':>19}{'cost':>8}"
        f"{'p50 ms gw/direct':>19}{'errors':>7}  req/s of each run, gateway | direct",
    ]
    for kind, c in costs.items():
        g, d = c["gateway"], c["direct"]
        by_cpu = f"{c['cost_by_cpu']:.1%}" if c.get("cost_by_cpu") is not None else "–"
        lines.append(
            f"{LABELS[kind]:<20}{g['rps']:>14.0f}{d['rps']:>14.0f}{c['cost']:>8.1%}"
            f"{sum(g['cpu_ms'].values()):>10.2f} / {sum(d['cpu_ms'].values()):<6.2f}{by_cpu:>8}"
            f"{g['p50_ms']:>10.1f} / {d['p50_ms']:<6.1f}{g['errors'] + d['errors']:>7}"
            f"  {' '.join(map(str, g['rps_runs']))} | {' '.join(map(str, d['rps_runs']))}"
        )
    lines += [
        "(cost = 1 - gateway ÷ direct, by req/s and by CPU per request; on a machine whose cores are the",
        " limit the two estimate the same thing, and the CPU one is the steadier)",
    ]
    return lines + _cpu_per_request(summary, costs)


def _cpu_per_request(summary: dict, costs: dict) -> list[str]:
    lines = ["", "CPU per request, in ms of one core, through the gateway (POST /orders: until settled):"]
    groups = []
    for c in costs.values():
        groups += [g for g, ms in c["gateway"]["cpu_ms"].items() if ms >= 0.05 and g not in groups]
    lines.append(f"{'':<20}{'total':>7}{'ceiling':>9}  " + "  ".join(groups))
    for kind, c in costs.items():
        cpu = c["gateway"]["cpu_ms"]
        total = sum(cpu.values())
        ceiling = summary["machine"]["cpus"] * 1000 / total if total else 0
        by_group = "  ".join(f"{cpu.get(g, 0):>{len(g)}.2f}" for g in groups)
        lines.append(f"{LABELS[kind]:<20}{total:>7.2f}{ceiling:>7.0f}/s  {by_group}")
    lines.append("(ceiling: the req/s all cores could serve at that CPU cost, with nothing else running)")
    return lines


def _kong_share(summary: dict) -> list[str]:
    gw = summary["phases"].get("gateway")
    if not (gw and gw.get("cpu")):
        return []
    cores = gw["cpu"]["cores"]
    system = sum(c for group, c in cores.items() if group not in NOT_THE_SYSTEM)
    return [
        f"Kong's CPU in the mixed run: {cores.get('gateway', 0):.2f} cores, "
        f"{cores.get('gateway', 0) / max(system, 1e-9):.1%} of what the system used"
    ]


def _settlement(summary: dict) -> list[str]:
    lines = ["", "settlement lag (created_at → settled_at of each order placed, read from the orders API):"]
    for name, lag in summary["settlement"].items():
        lines.append(
            f"  {name:<8} {lag['orders']} orders {dict(lag['by_status'])}: p50 {fmt_s(lag['p50_s'])}, "
            f"p95 {fmt_s(lag['p95_s'])}, p99 {fmt_s(lag['p99_s'])}, max {fmt_s(lag['max_s'])}; "
            f"the last settled {fmt_s(lag['drained_after_end_s'])} after the load stopped"
            + (f"; {lag['unsettled']} NOT SETTLED" if lag["unsettled"] else "")
        )
    return lines


def _broker(summary: dict) -> list[str]:
    lines = []
    for broker in summary.get("broker") or []:
        alone = ", products-relay and orders-worker stopped meanwhile" if broker.get("alone") else ""
        lines += ["", f"broker side ({broker['workers']} products-worker(s) working off a backlog{alone}):"]
        if "events_per_s" in broker:
            lines.append(
                f"  {broker['events']} OrderCreated events: {broker['events_per_s']:.0f} events/s "
                f"from the first claim to the last ({broker['span_s']:.2f}s)"
            )
        else:
            lines.append("  the workers did not finish the backlog in time")
        if broker.get("cpu_ms_per_event"):
            parts = ", ".join(f"{group} {ms:.3f}" for group, ms in broker["cpu_ms_per_event"].items())
            lines.append(f"  CPU ms per event meanwhile: {parts}")
        if "all_settled_after_start_s" in broker:
            lines.append(
                f"  all those orders CONFIRMED/REJECTED {broker['all_settled_after_start_s']:.2f}s after the workers "
                f"started (~{broker['orders_queued'] / broker['all_settled_after_start_s']:.0f} orders/s end to end, "
                "through products-relay and orders-worker)"
            )
    return lines


def _cpu(summary: dict) -> list[str]:
    lines = []
    idle = summary.get("idle")
    if idle:
        parts = ", ".join(f"{group} {cores:.3f}" for group, cores in idle["cores"].items() if cores >= 0.0005)
        lines += ["", f"the stack idle ({idle['seconds']:.0f}s): {idle['stack_cores']:.1%} of a core ({parts})"]
    for name, phase in summary["phases"].items():
        if phase.get("cpu"):
            cpu = phase["cpu"]
            parts = ", ".join(f"{group} {cores:.2f}" for group, cores in cpu["cores"].items() if cores >= 0.01)
            busy = f"{cpu['cpus']} cores, {cpu['machine_busy']:.0%} busy"
            lines += ["", f"CPU in the {name} run ({busy}), in cores: {parts}"]
    return lines


def _warnings(summary: dict) -> list[str]:
    warnings = [(name, w) for name, phase in summary["phases"].items() for w in phase.get("warnings", [])]
    for kind, c in (summary.get("gateway_cost") or {}).items():
        foreign = max(c["gateway"]["foreign_cores"], c["direct"]["foreign_cores"])
        if foreign > 0.1:
            warnings.append(
                (
                    f"gateway cost, {LABELS[kind]}",
                    f"processes outside this stack used up to {foreign:.2f} cores: the numbers are disturbed",
                )
            )
        if c["gateway"]["restarted"] or c["direct"]["restarted"]:
            warnings.append((f"gateway cost, {LABELS[kind]}", "stack processes were restarted: not valid"))
    return [f"WARNING ({name}): {warning}" for name, warning in dict.fromkeys(warnings)]
