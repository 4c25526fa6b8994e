#!/usr/bin/env python3
"""Turns bench/run's results.jsonl into bench/results/NAME.md and NAME.json:
the machine, one row per HTTP scenario (throughput, latency, errors, peak
RSS, ratio to its ceiling, database transactions per request), the pgbench
ceilings, and the targets of the "Benchmarks" issue with pass/fail."""

import argparse
import datetime
import json
import os
import platform
import subprocess

READS = {"list", "list-filtered", "get", "mcp-list"}
WRITES = {"create", "patch", "toggle", "mcp-create"}
# MCP tool calls and the HTTP route each does the work of.
MCP_ROUTES = (("mcp-list", "list"), ("mcp-create", "create"))


def sh(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine(bin_path, admin_url):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    os_name = "unknown"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "os": os_name,
        "tasks_api": sh(bin_path, "--version"),
        "git_commit": sh("git", "rev-parse", "--short", "HEAD")
        + (" (uncommitted changes)" if dirty not in ("", "unknown") else ""),
        "rustc": sh("rustc", "--version"),
        "postgresql": sh("psql", "-Atq", admin_url, "-c", "show server_version"),
        "sqlite3_cli": sh("sqlite3", "--version").split(" ")[0],
        "wrk": sh("wrk", "--version").split(" [")[0],
        "pgbench": sh("pgbench", "--version"),
        "loadavg_at_report": open("/proc/loadavg").read().split()[:3],
    }


def rate(r):
    """Requests (or transactions) per second of one measurement."""
    if r["kind"] == "pgbench":
        return r.get("tps")
    w = r["wrk"]
    return w["requests"] / (w["duration_us"] / 1e6) if w["duration_us"] else None


def bracket(results, i, key):
    """The ceiling measured last before results[i] and first after it with
    the same key, as (mean rate, the measurements used)."""
    before = next((r for r in reversed(results[:i]) if key(r)), None)
    after = next((r for r in results[i + 1:] if key(r)), None)
    used = [r for r in (before, after) if r is not None and rate(r)]
    if not used:
        return None, []
    return sum(rate(r) for r in used) / len(used), used


def derive(results):
    """One row per HTTP run, each compared with the mean of the ceilings
    measured right before and right after it (bench/run brackets every
    scenario with them)."""
    http = [(i, r) for i, r in enumerate(results) if r["kind"] == "http"]
    counted = {r["scenario"]: r for r in results if r["kind"] == "statements"}
    rows = []
    for i, r in http:
        w = r["wrk"]
        secs = w["duration_us"] / 1e6
        rps = w["requests"] / secs if secs else 0.0
        socket = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
        row = {
            "backend": r["backend"],
            "scenario": r["scenario"],
            "connections": r["connections"],
            "requests": w["requests"],
            "rps": round(rps, 1),
            "p50_ms": w["p50_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "p999_ms": w["p999_us"] / 1000,
            "max_ms": w["lat_max_us"] / 1000,
            "errors_status": w["err_status"],
            "errors_socket": socket,
            "errors_socket_by_kind": {
                kind: w[f"err_{kind}"] for kind in ("connect", "read", "write", "timeout")
            },
            "errors": w["err_status"] + socket,
            "rss_peak_mb": round(r["rss_peak_kb"] / 1024, 1),
            # RSS less file-backed pages (SQLite maps its database file):
            # the memory the process itself allocated.
            "rss_anon_peak_mb": round(r.get("rss_anon_peak_kb", 0) / 1024, 1),
            "hwm_reset": r["hwm_reset"],
            "loadavg_1m_before": r["loadavg_1m_before"],
        }
        for mode, suffix in (("prepared", ""), ("extended", "_extended")):
            if r["backend"] != "postgres" or r["scenario"] == "health":
                break
            tps, used = bracket(results, i, lambda c, m=mode: c["kind"] == "pgbench"
                                and (c["scenario"], c.get("mode", "prepared")) == (r["scenario"], m))
            if tps:
                row[f"sql_ceiling{suffix}_tps"] = round(tps, 1)
                row[f"sql_ceiling{suffix}_runs"] = len(used)
                p99s = [c["p99_ms"] for c in used if c.get("p99_ms") is not None]
                row[f"sql_ceiling{suffix}_p99_ms"] = max(p99s) if p99s else None
                row[f"ratio_to_sql_ceiling{suffix}"] = round(rps / tps, 3)
        cpu = r.get("cpu_seconds")
        if cpu and w["requests"] and cpu.get("window_s"):
            # Requests in the sampling window, at the run's average rate.
            per = 1e6 / (rps * cpu["window_s"])
            wrk = cpu["wrk"] * cpu["window_s"] / secs  # wrk's CPU over the same window
            other = cpu["machine_busy"] - cpu["server"] - cpu["postgres"] - wrk
            row["cpu_us_per_request"] = {
                "server": round(cpu["server"] * per, 1),
                "postgres": round(cpu["postgres"] * per, 1),
                "wrk": round(wrk * per, 1),
                "rest_of_machine": round(other * per, 1),
            }
            row["machine_busy_pct"] = round(100 * cpu["machine_busy"] / cpu["machine_total"], 1)
        hrps, used = bracket(results, i, lambda c: c["kind"] == "http"
                             and c["scenario"] == "health"
                             and (c["backend"], c["connections"]) == (r["backend"], r["connections"]))
        if hrps and r["scenario"] != "health":
            row["health_rps"] = round(hrps, 1)
            row["health_runs"] = len(used)
            row["ratio_to_health"] = round(rps / hrps, 3)
            tps = row.get("sql_ceiling_tps")
            if tps and hrps:
                # The best ratio to the SQL ceiling this machine allows: if
                # the server added nothing beyond /health, each request would
                # still cost the machine 1/hrps (HTTP) + 1/tps (SQL) of its
                # time, so rps ≤ 1 / (1/hrps + 1/tps).
                row["ratio_bound"] = round(hrps / (hrps + tps), 3)
        count = counted.get(r["scenario"]) if r["backend"] == "postgres" else None
        if count and count["requests"]:
            row["db_transactions_per_request"] = round(count["xacts"] / count["requests"], 3)
            if "server_statements" in count:
                row["db_statements_per_request"] = round(
                    count["server_statements"] / count["requests"], 3
                )
            row["db_rows_fetched_per_request"] = round(count["tup_fetched"] / count["requests"], 1)
        rows.append(row)
    pgbench_runs = [r for r in results if r["kind"] == "pgbench"]
    return rows, pgbench_runs, list(counted.values())


def targets(rows):
    def find(backend, scenario, conns):
        for r in rows:
            if (r["backend"], r["scenario"], r["connections"]) == (backend, scenario, conns):
                return r
        return None

    out = []

    def check(name, row, value, ok, shown):
        if row is None or value is None:
            out.append({"target": name, "measured": "not run", "pass": None})
        else:
            out.append({"target": name, "measured": shown, "pass": bool(ok)})

    for s, floor in (("list", 0.70), ("get", 0.70), ("create", 0.60), ("patch", 0.60)):
        r = find("postgres", s, 32)
        v = r.get("ratio_to_sql_ceiling") if r else None
        bound = r.get("ratio_bound") if r else None
        shown = f"{v:.0%}" if v is not None else ""
        if v is not None and bound is not None:
            shown += f" (machine bound ≈ {bound:.0%})"
        check(f"PostgreSQL c=32 {s} ≥ {floor:.0%} of pgbench", r, v,
              v is not None and v >= floor, shown)
    for s in ("list", "list-filtered", "get", "create", "patch", "toggle"):
        limit = 10 if s in READS else 20
        r = find("postgres", s, 32)
        v = r["p99_ms"] if r else None
        alone = r.get("sql_ceiling_p99_ms") if r else None
        shown = f"{v:.2f} ms" if v is not None else ""
        if v is not None and alone is not None:
            shown += f" (pgbench alone: {alone:.2f} ms)"
        check(f"PostgreSQL c=32 {s} p99 ≤ {limit} ms", r, v,
              v is not None and v <= limit, shown)
    c256 = [r for r in rows if r["backend"] == "postgres" and r["connections"] == 256]
    if c256:
        errors = sum(r["errors"] for r in c256)
        peak = max(r["rss_peak_mb"] for r in c256)
        check("PostgreSQL c=256 zero errors (all scenarios)", c256, errors, errors == 0,
              f"{errors} errors")
        check("PostgreSQL c=256 peak RSS ≤ 60 MB", c256, peak, peak <= 60, f"{peak:.1f} MB")
    else:
        check("PostgreSQL c=256 zero errors (all scenarios)", None, None, False, "")
        check("PostgreSQL c=256 peak RSS ≤ 60 MB", None, None, False, "")
    for backend in ("postgres", "sqlite"):
        for conns in sorted({r["connections"] for r in rows if r["backend"] == backend}):
            for tool, route in MCP_ROUTES:
                t, h = find(backend, tool, conns), find(backend, route, conns)
                v = t["rps"] / h["rps"] if t and h and h["rps"] else None
                check(f"{backend} c={conns} {tool} ≥ 70% of {route} req/s", t and h, v,
                      v is not None and v >= 0.70, f"{v:.0%}" if v is not None else "")
    # Issue 20's floor: 30% at 32 connections (256 is reported, not judged).
    r = find("sqlite", "list", 32)
    v = r.get("ratio_to_health") if r else None
    check("SQLite c=32 list ≥ 30% of /health", r, v,
          v is not None and v >= 0.30, f"{v:.0%}" if v is not None else "")
    counted = [r for r in rows if r.get("db_statements_per_request") is not None]
    if counted:
        worst = max(r["db_statements_per_request"] for r in counted)
        check("PostgreSQL one statement per request (counted scenarios)", counted, worst,
              worst <= 1.01, f"at most {worst:.3f}")
    return out


def median(sorted_values):
    n = len(sorted_values)
    return (sorted_values[(n - 1) // 2] + sorted_values[n // 2]) / 2


def fmt(v, spec="{:.0f}"):
    return "–" if v is None else spec.format(v)


def markdown(doc):
    m = doc["machine"]
    lines = [
        f"# tasks-api benchmarks ({doc['mode']})",
        "",
        f"{m['date_utc']} · `{m['tasks_api']}` at {m['git_commit']} · generated by `bench/run`",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']} × {m['nproc']} (nproc) |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS / kernel | {m['os']} / {m['kernel']} |",
        f"| toolchain | {m['rustc']} (release profile: thin LTO) |",
        f"| PostgreSQL | {m['postgresql']} (same machine, loopback TCP) |",
        f"| SQLite CLI (seeding) | {m['sqlite3_cli']} |",
        f"| load generators | {m['wrk']}; {m['pgbench']} |",
        f"| parameters | {doc['params']} |",
        "",
        "Server, database and load generator share the same cores; the 1-minute load",
        "average before each measurement is in the JSON (`loadavg_1m_before`).",
        "",
        "## HTTP scenarios",
        "",
        "| backend | scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MB "
        "| of it private MB | SQL ceiling tps | vs SQL ceiling | vs -M extended | /health req/s "
        "| vs /health | DB statements/req | DB transactions/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    scenario_rows = [r for r in doc["http"] if r["scenario"] != "health"]
    for r in scenario_rows:
        errors = str(r["errors"])
        if r["errors"]:
            kinds = ", ".join(
                f"{n} {kind}"
                for kind, n in r.get("errors_socket_by_kind", {}).items()
                if n
            )
            errors += f" ({r['errors_status']} status, {r['errors_socket']} socket"
            errors += f": {kinds})" if kinds else ")"
        lines.append(
            f"| {r['backend']} | {r['scenario']} | {r['connections']} | {r['rps']:.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {errors} "
            f"| {r['rss_peak_mb']:.1f} | {r['rss_anon_peak_mb']:.1f} "
            f"| {fmt(r.get('sql_ceiling_tps'))} "
            f"| {fmt(r.get('ratio_to_sql_ceiling'), '{:.0%}')} "
            f"| {fmt(r.get('ratio_to_sql_ceiling_extended'), '{:.0%}')} "
            f"| {fmt(r.get('health_rps'))} "
            f"| {fmt(r.get('ratio_to_health'), '{:.0%}')} "
            f"| {fmt(r.get('db_statements_per_request'), '{:.2f}')} "
            f"| {fmt(r.get('db_transactions_per_request'), '{:.2f}')} |"
        )
    health_rows = [r for r in doc["http"] if r["scenario"] == "health"]
    if health_rows:
        lines += [
            "",
            "## HTTP ceiling: /health before and after each scenario",
            "",
            "The same route measured before and after every scenario (half its"
            " duration each): its spread is how much this machine's speed moved"
            " during the run, and why each ratio uses the mean of the two runs"
            " around it.",
            "",
            "| backend | conns | runs | req/s min | median | max | server µs/req median "
            "| p99 ms median |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        groups = {}
        for r in health_rows:
            groups.setdefault((r["backend"], r["connections"]), []).append(r)
        for (backend, conns), runs in groups.items():
            rps = sorted(r["rps"] for r in runs)
            server = sorted(r["cpu_us_per_request"]["server"] for r in runs
                            if "cpu_us_per_request" in r)
            p99 = sorted(r["p99_ms"] for r in runs)
            lines.append(
                f"| {backend} | {conns} | {len(runs)} | {rps[0]:.0f} | {median(rps):.0f} "
                f"| {rps[-1]:.0f} | {fmt(median(server) if server else None)} "
                f"| {median(p99):.2f} |"
            )
    cpu_rows = [r for r in scenario_rows if "cpu_us_per_request" in r]
    if cpu_rows:
        lines += [
            "",
            "## Where the CPU went (µs of CPU per request)",
            "",
            "From /proc: the server process, the PostgreSQL backends connected to the bench"
            " database (the server's pool), wrk (`time`), and the rest of the machine's busy"
            " time (PostgreSQL's WAL writer and checkpointer, and anything else running).",
            "",
            "| backend | scenario | conns | server | postgres backends | wrk | rest of machine "
            "| machine busy |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in cpu_rows:
            c = r["cpu_us_per_request"]
            lines.append(
                f"| {r['backend']} | {r['scenario']} | {r['connections']} | {c['server']:.0f} "
                f"| {c['postgres']:.0f} | {c['wrk']:.0f} | {c['rest_of_machine']:.0f} "
                f"| {r['machine_busy_pct']:.0f}% |"
            )
    if doc["pgbench"]:
        lines += [
            "",
            "## SQL ceilings (PostgreSQL)",
            "",
            "pgbench running the statement the server issues for the scenario"
            " (bench/pgbench/*.sql), random user and own task id per transaction."
            " `prepared` reuses named prepared statements (the ceiling the targets use);"
            " `extended` parses and plans every statement, as the server's unnamed"
            " statements do.",
            "",
            "| statement | mode | measured | clients | tps | avg latency ms | p50 ms | p99 ms "
            "| failed |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for p in doc["pgbench"]:
            lines.append(
                f"| {p['scenario']} | {p.get('mode', 'prepared')} "
                f"| {p.get('position', 'before')} its HTTP runs | {p['clients']} | {fmt(p['tps'])} "
                f"| {fmt(p['latency_avg_ms'], '{:.2f}')} | {fmt(p.get('p50_ms'), '{:.2f}')} "
                f"| {fmt(p.get('p99_ms'), '{:.2f}')} | {int(p['failed'] or 0)} |"
            )
    lines += ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    for t in doc["targets"]:
        verdict = {True: "pass", False: "**FAIL**", None: "–"}[t["pass"]]
        lines.append(f"| {t['target']} | {t['measured']} | {verdict} |")
    idle = ", ".join(f"{k}: {v / 1024:.1f} MB" for k, v in doc["idle_rss_kb"].items())
    lines += [
        "",
        "## Notes",
        "",
        f"- Idle RSS after start-up: {idle or '–'}.",
        "- Machine bound (targets): the best ratio to pgbench this machine allows even if the"
        " server cost nothing beyond `/health`: server, database and load generator share the"
        " same two cores, so a request costs at least 1/health + 1/pgbench of their time, and"
        " rps ≤ health·pgbench/(health + pgbench); as a ratio, health/(health + pgbench)."
        " That holds for a server that, like pgbench, sends each statement on its own"
        " connection and waits; the server's reads share one connection and are pipelined"
        " (`DB_SHARED_READ_CONNECTIONS`), which makes each cheaper for PostgreSQL than a"
        " pgbench transaction, so a read can beat this bound.",
        "- pgbench alone (targets): the p99 of pgbench's own transactions (`-l` log) at the same"
        " client count, with nothing else running (the higher of its two runs).",
        "- Errors are wrk's non-2xx/3xx responses plus socket errors (connect, read,"
        " write, timeout at 10 s).",
        "- Peak RSS is the server's VmHWM, reset before each measurement through"
        " /proc/PID/clear_refs, or the highest VmRSS sampled every 100 ms, whichever is larger.",
        "- DB statements/req and DB transactions/req (PostgreSQL): each scenario once more"
        " on one connection for a few seconds, then 11 s of quiet (idle backends publish"
        " statistics within 10 s). Transactions: growth of `xact_commit + xact_rollback` of"
        " the bench database in pg_stat_database, divided by the requests completed"
        " (pg_stat_statements is not loaded on the shared cluster: it needs"
        " shared_preload_libraries and a restart). The server runs every statement as its"
        " own implicit transaction (only creates with an Idempotency-Key use an explicit"
        " one; none are sent), so this is every statement PostgreSQL ran, including each"
        " write's post-commit `NOTIFY` for other instances' event streams: on one connection"
        " every write has its own; under load one `NOTIFY` carries many users' changes."
        " Statements: the server's own count of the statements its requests ran (/metrics"
        " `db_statements_total`), which leaves that `NOTIFY` out; the floor is judged on it.",
        "- /health touches no database: it is the HTTP ceiling of this server on this machine."
        " It and the pgbench ceilings are measured right before and right after each"
        " scenario, and every ratio uses the mean of the two (`-M extended`: before only).",
        f"- Server log warnings/errors: {doc['server_log_warnings'] or '–'}.",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--params", default="")
    a = ap.parse_args()
    results = [json.loads(line) for line in open(a.results) if line.strip()]
    http, pgbench, counted = derive(results)
    doc = {
        "mode": a.mode,
        "params": a.params,
        "machine": machine(a.bin, a.admin_url),
        "http": http,
        "pgbench": pgbench,
        "statement_counts": counted,
        "targets": targets(http),
        "idle_rss_kb": {r["backend"]: r["rss_kb"] for r in results if r["kind"] == "idle_rss"},
        "server_log_warnings": {
            r["backend"]: r["warnings"] for r in results if r["kind"] == "server_log"
        },
    }
    with open(a.out + ".json", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(a.out + ".md", "w") as f:
        f.write(markdown(doc))


if __name__ == "__main__":
    main()
