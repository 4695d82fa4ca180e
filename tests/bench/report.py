#!/usr/bin/env python3
"""Aggregates the raw lines of tests/bench/run.sh into the markdown report and chart data.

Raw line: "<workload> <endpoint> <rep> key=value ..." (pop3load's result line, plus pb_* keys
for popbridge's memory, CPU and bytes read on the A endpoints, and for W6 the up_* growth of the
counting relay's figures over the round). Endpoints: A (popbridge warm: its defaults, session
pool and snapshot cache on), Acold (both off, and RETR read-ahead), B, C; W4S has Aw1 and Aw2
(workers = 1 and 2). Across repetitions every figure is the median of the per-repetition figures;
failures are summed; popbridge's peak RSS is the maximum. W3T (TOP on W3's message) is shown
under W3's title.
"""
import argparse
import statistics
import sys

ENDPOINTS = ["A", "Acold", "B", "C"]
NAMES = {"A": "A popbridge warm", "Acold": "A popbridge cold", "B": "B Dovecot imapc",
         "C": "C Dovecot POP3"}
TITLES = {
    "W1": "W1 poll",
    "W1L": "W1 poll, 100k messages",
    "W2": "W2 download",
    "W3": "W3 big message",
    "W3T": "W3 big message",
    "W4": "W4 concurrency",
    "W5": "W5 TLS",
}


def parse(path):
    runs = {}
    with open(path) as raw:
        for line in raw:
            parts = line.split()
            if len(parts) < 3:
                continue
            fields = {}
            for item in parts[3:]:
                key, _, value = item.partition("=")
                try:
                    fields[key] = float(value)
                except ValueError:
                    fields[key] = value
            runs.setdefault((parts[0], parts[1]), []).append(fields)
    return runs


def median(runs, key):
    values = [r[key] for r in runs if isinstance(r.get(key), float)]
    return statistics.median(values) if values else None


def total(runs, key):
    return sum(r.get(key, 0.0) for r in runs if isinstance(r.get(key, 0.0), float))


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def io_per_command(runs):
    """Median over the runs of popbridge's rchar growth per measured TOP/RETR command."""
    values = [r["io_bytes"] / r["io_cmds"] for r in runs
              if isinstance(r.get("io_cmds"), float) and r["io_cmds"] > 0
              and isinstance(r.get("io_bytes"), float)]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


W6_ENDPOINTS = ["A", "Acold", "B"]


def per_poll(items, key):
    """Median over the repetitions of a relay figure divided by the round's successful polls."""
    values = [r[key] / r["ok"] for r in items
              if isinstance(r.get(key), float) and isinstance(r.get("ok"), float) and r["ok"] > 0]
    return statistics.median(values) if values else None


W7_NAMES = {"none": "none", "path": "path (SQLite)", "redis": "redis"}


def w7_name(endpoint):
    parts = endpoint.split(".")[1:]
    name = W7_NAMES.get(parts[0], parts[0]) if parts else endpoint
    return (name + (", `%{stable}`" if "stable" in parts[1:] else "")
            + (", device over TLS" if "tls" in parts[1:] else ""))


def per_poll_ms(items, key, scale):
    values = [r[key] * scale / r["ok"] for r in items
              if isinstance(r.get(key), float) and isinstance(r.get("ok"), float) and r["ok"] > 0]
    return statistics.median(values) if values else None


def redis_per_poll(items):
    """Commands Redis processed per poll (EVALs and their scripts' commands), INFO left out."""
    values = [(r["r_commands"] - r.get("r_cmd.info", 0.0)) / r["ok"] for r in items
              if isinstance(r.get("r_commands"), float) and r.get("ok", 0.0) > 0]
    return statistics.median(values) if values else None


def w7_section(runs, args):
    """W7 (issue 15): what each [state] backend costs a poll, and the UIDL map's size."""
    endpoints = []
    for (w, e) in runs:
        if w in ("W7R1", "W7R2") and e not in endpoints:
            endpoints.append(e)
    maps = sorted(((int(r["count"]), r) for r in runs.get(("W7MAP", "map"), [])
                   if isinstance(r.get("count"), float)), key=lambda item: item[0])
    if not endpoints and not maps:
        return []
    order = ["A.none", "A.none.tls", "A.path", "A.redis", "A.none.stable", "A.path.stable",
             "A.redis.stable"]
    endpoints.sort(key=lambda e: order.index(e) if e in order else len(order))
    out = ["\n## State backends (issue 15)\n",
           f"- **Date:** {args.date}; **machine:** `nproc` = {args.nproc}, CPU: {args.cpu}",
           f"- **Load average** (1/5/15 min) at the start and the end: {args.load}",
           f"- **Command:** `{args.command}`; popbridge `{args.revision}`, "
           f"`workers = {args.workers}`, {args.reps} repetitions (medians)"]
    if args.w7_note:
        out.append(f"- **Note:** {args.w7_note}")
    out.append("")
    out.append(
        f"W7: {args.w7_devices:,} devices (users `w7u0` ...; 20 messages of 2 KB each) poll "
        "their own mailbox (USER, PASS, STAT, UIDL, QUIT), 20 at a time, through the counting "
        "relay, against one popbridge per configuration with its defaults (exclusive maildrops: "
        "with Redis every login takes a lease) and the `[state]` shown. Round 1: every device "
        "polls once, the state store starts empty (SQLite file removed, Redis flushed); round 2: "
        "every device polls again, nothing changed. The configurations alternate within each "
        "repetition. *CPU ms / poll* is popbridge's utime + stime growth over the round divided "
        "by its polls; *Redis commands / poll* is the growth of `total_commands_processed` "
        "without the harness' own INFO (it counts an EVAL and each command its script runs); "
        "*Redis CPU* is redis-server's utime + stime over the round, per poll; *state growth* is "
        "the SQLite file and its WAL after the round (path) or the growth of Redis' "
        "`used_memory` and key count over it (redis). *device over TLS*: the same polls over "
        "implicit TLS (pop3s, a full handshake each, P-256 certificate) without a state store.\n")
    if endpoints:
        out.append("| Round | `[state]` | polls/s | median session (ms) | p95 session (ms) | "
                   "popbridge CPU ms / poll | vs none | upstream commands / poll | upstream "
                   "connections / poll | Redis commands / poll | Redis CPU ms / poll | "
                   "state growth (bytes) | failed |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in (1, 2):
            base = per_poll_ms(runs.get((f"W7R{n}", "A.none"), []), "pb_cpu_s", 1000)
            for e in endpoints:
                items = runs.get((f"W7R{n}", e), [])
                if not items:
                    continue
                cpu = per_poll_ms(items, "pb_cpu_s", 1000)
                delta = None if cpu is None or base is None else cpu - base
                rcpu = per_poll_ms(items, "r_cpu_ticks", 1000 / args.clk_tck)
                redis = e.split(".")[1] == "redis"
                growth = median(items, "r_mem") if redis else median(items, "st_bytes")
                keys = median(items, "r_keys") if redis else None
                if e.split(".")[1] == "none":
                    growth = None
                failed = int(total(items, "failed") + total(items, "harness_error"))
                out.append(
                    f"| {n} | {w7_name(e)} | {fmt(median(items, 'sessions_per_s'))} | "
                    f"{fmt(median(items, 'median_ms'))} | {fmt(median(items, 'p95_ms'))} | "
                    f"{fmt(cpu, 2)} | {'' if delta is None else f'{delta:+.2f}'} | "
                    f"{fmt(per_poll(items, 'up_commands'), 2)} | "
                    f"{fmt(per_poll(items, 'up_connections'), 2)} | "
                    f"{fmt(redis_per_poll(items), 2) if redis else '–'} | "
                    f"{fmt(rcpu, 3) if redis else '–'} | "
                    f"{'–' if growth is None else fmt(growth)}"
                    f"{'' if keys is None else f' ({keys:+,.0f} keys)'} | {failed} |")
        rows = []
        for n in (1, 2):
            for e in endpoints:
                items = runs.get((f"W7R{n}", e), [])
                if not items or e.split(".")[1] != "redis":
                    continue
                names = {k[6:] for r in items for k in r if k.startswith("r_cmd.")} - {"info"}
                calls = sorted(((per_poll(items, "r_cmd." + k) or 0.0, k) for k in names),
                               reverse=True)
                listing = ", ".join(f"{k.upper()} {v:.3g}" for v, k in calls if v > 0)
                mon = runs.get((f"W7MON{n}", e), [])

                def split(prefix):
                    keys = sorted({k for r in mon for k in r if k.startswith(prefix)})
                    pairs = sorted(((per_poll(mon, k) or 0.0, k[len(prefix):]) for k in keys),
                                   reverse=True)
                    return (sum(v for v, _ in pairs),
                            ", ".join(f"{k.upper()} {v:.3g}" for v, k in pairs if v > 0))
                top_total, top_list = split("top.")
                lua_total, _ = split("lua.")
                bytes_in = per_poll(items, "r_in_bytes")
                bytes_out = per_poll(items, "r_out_bytes")
                rows.append(f"| {n} | {w7_name(e)} | "
                            f"{fmt(top_total, 2) if mon else 'n/a'} ({top_list or 'n/a'}) | "
                            f"{fmt(lua_total, 2) if mon else 'n/a'} | {fmt(bytes_in)} / "
                            f"{fmt(bytes_out)} | {listing} |")
        if rows:
            out.append("\nRedis per poll, by command. *Round trips*: the commands popbridge "
                       "sends (from `MONITOR`, on a separate pass of "
                       "50 polls per round); *in scripts*: the commands its Lua scripts run "
                       "inside those EVALs (atomic, no round trip); *bytes*: Redis' "
                       "`total_net_input_bytes` / `total_net_output_bytes` growth per poll "
                       "(the harness' INFO replies included, a few bytes per poll); *all "
                       "calls*: `INFO commandstats`, both kinds together.\n")
            out.append("| Round | `[state]` | round trips / poll | in scripts / poll | bytes "
                       "to / from Redis per poll | all calls per poll |")
            out.append("|---|---|---|---:|---:|---|")
            out.extend(rows)
    if maps:
        out.append("\n**The stable-UIDL map's size** (`pop3load uidlmap`): one maildrop's map "
                   "with N entries as sessions write them (`toRecord`: a 16-character UIDL, a "
                   "Message-ID of 40-odd characters, the date key, the size, the SHA-256 "
                   "header hash in hex), through `SqliteStateStore::putUidls` in transactions "
                   "of 1,000 into a new file, closed (so the WAL is checkpointed) before it is "
                   "measured; and the same entries as the Redis hash `RedisStateStore` writes "
                   "(`HSET`, field `uidvalidity:uid`), measured with `MEMORY USAGE key SAMPLES "
                   "0` and the length of `DUMP key` (what an RDB snapshot or a replica transfer "
                   "carries).\n")
        out.append("| Entries | encoded entry (bytes, mean) | SQLite file (bytes) | SQLite bytes "
                   "/ entry | Redis memory (bytes) | Redis bytes / entry | Redis DUMP (bytes) | "
                   "DUMP bytes / entry | Redis encoding |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for count, r in maps:
            def num(key):
                v = r.get(key)
                return v if isinstance(v, float) else None

            def each(key):
                v = num(key)
                return None if v is None else v / count
            db = (num("sqlite_db") or 0.0) + (num("sqlite_wal") or 0.0)
            out.append(f"| {count:,} | {fmt(each('entry_bytes'))} | {fmt(db)} | "
                       f"{fmt(db / count)} | {fmt(num('redis_mem'))} | "
                       f"{fmt(each('redis_mem'))} | {fmt(num('redis_dump'))} | "
                       f"{fmt(each('redis_dump'))} | {r.get('redis_encoding', '–')} |")
    return out


def w6_section(runs, args):
    """W6: upstream IMAP commands and bytes per device poll, A (warm, cold) against B."""
    if not any((f"W6R{n}", e) in runs for n in (1, 2) for e in W6_ENDPOINTS):
        return []
    out = ["\n## W6: many devices, upstream IMAP per poll\n",
           f"{args.w6_devices:,} devices (users `w6u0` ...), each polling its own mailbox "
           "(USER, PASS, STAT, UIDL, QUIT); round 1 on the seeded mailboxes, round 2 after "
           f"{args.w6_new} new messages arrived in each (files written into the Maildir between "
           "the rounds). Both rounds run against one popbridge process (or one B), which starts "
           "empty. A counting TCP relay (`pop3load relay`) sits between each proxy and the IMAP "
           "server, plain IMAP: it counts the client-to-server lines that start an IMAP command "
           "(literal data skipped) and the bytes each way, including B's passdb logins. Figures "
           "are per successful poll, median over the repetitions; *connections* is upstream TCP "
           "connections opened per poll (below 1: sessions reused from the pool).\n",
           "| Round | Endpoint | commands / poll | bytes to server / poll | bytes from server "
           "/ poll | connections / poll | median session (ms) | failed | commands per poll |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for n in (1, 2):
        for e in W6_ENDPOINTS:
            items = runs.get((f"W6R{n}", e), [])
            if not items:
                continue
            names = {key[7:].replace("_", " ") for r in items for key in r
                     if key.startswith("up_cmd.")}
            top = sorted(((per_poll(items, "up_cmd." + k.replace(" ", "_")) or 0.0, k)
                          for k in names), reverse=True)
            listing = ", ".join(f"{k} {v:.3g}" for v, k in top[:8])
            failed = int(total(items, "failed") + total(items, "harness_error"))
            out.append(f"| {n} | {NAMES[e]} | {fmt(per_poll(items, 'up_commands'), 2)} | "
                       f"{fmt(per_poll(items, 'up_c2s_bytes'))} | "
                       f"{fmt(per_poll(items, 'up_s2c_bytes'))} | "
                       f"{fmt(per_poll(items, 'up_connections'), 2)} | "
                       f"{fmt(median(items, 'median_ms'))} | {failed} | {listing} |")
    rows = []
    for n in (1, 2):
        a, b = runs.get((f"W6R{n}", "A"), []), runs.get((f"W6R{n}", "B"), [])
        if a and b:
            rc = ratio(per_poll(a, "up_commands"), per_poll(b, "up_commands"))
            rb = ratio(per_poll(a, "up_c2s_bytes") + per_poll(a, "up_s2c_bytes")
                       if per_poll(a, "up_c2s_bytes") is not None else None,
                       per_poll(b, "up_c2s_bytes") + per_poll(b, "up_s2c_bytes")
                       if per_poll(b, "up_c2s_bytes") is not None else None)
            rows.append(f"- Round {n}: A (warm) / B: {fmt(rc, 2)} of the commands, "
                        f"{fmt(rb, 2)} of the bytes (both directions).")
    if rows:
        out.append("")
        out.extend(rows)
    return out


def scaling_section(runs, args):
    """W4S: W4 against popbridge alone, workers = 1 and 2."""
    w1, w2 = runs.get(("W4S", "Aw1"), []), runs.get(("W4S", "Aw2"), [])
    if not w1 and not w2:
        return []
    out = ["\n## Scaling: W4 with `workers` = 1 and 2\n",
           f"W4 (concurrent sessions, each LIST, RETR all, QUIT) against popbridge warm alone, "
           f"on a machine with `nproc` = {args.nproc}; Dovecot IMAP behind it runs on the same "
           "cores. See README.md, *Scaling*, for what the workers share.\n",
           "| workers | sessions/s | popbridge CPU ms per session | peak RSS (MB) | failed |",
           "|---:|---:|---:|---:|---:|"]
    rates = {}
    for workers, items in ((1, w1), (2, w2)):
        if not items:
            continue
        rate = median(items, "sessions_per_s")
        rates[workers] = rate
        cpu = [r["pb_cpu_s"] / max(r.get("ok", 0.0), 1.0) for r in items
               if isinstance(r.get("pb_cpu_s"), float)]
        hwm = max((r["pb_hwm_kb"] for r in items if isinstance(r.get("pb_hwm_kb"), float)),
                  default=None)
        failed = int(total(items, "failed") + total(items, "harness_error"))
        out.append(f"| {workers} | {fmt(rate)} | "
                   f"{fmt(statistics.median(cpu) * 1000 if cpu else None, 2)} | "
                   f"{fmt(hwm / 1024 if hwm else None)} | {failed} |")
    speedup = ratio(rates.get(2), rates.get(1))
    if speedup is not None:
        out.append(f"\nTwo workers against one: {speedup:.2f}× the sessions per second.")
    return out


def issue14_section(figures, runs):
    """The targets of issue 14, for popbridge warm (A)."""
    lines = []

    def target(name, ok, detail):
        if ok is None:
            lines.append(f"- **{name}:** not measured in this run")
        else:
            lines.append(f"- **{name}:** {'met' if ok else 'MISSED'} ({detail})")

    def value(w, e):
        return figures.get(w, {}).get(e)

    def cold_note(w, unit):
        cold, c = value(w, "Acold"), value(w, "C")
        if cold is None:
            return ""
        return f"; cold A {fmt(cold)} {unit}, cold A/C {fmt(ratio(cold, c), 2)}"

    a, c = value("W1", "A"), value("W1", "C")
    rc = ratio(a, c)
    target("W1 (10k messages, warm pool) A/C ≤ 0.5 session time",
           None if rc is None else rc <= 0.5,
           f"A/C = {fmt(rc, 2)}, median {fmt(a)} ms vs {fmt(c)} ms" + cold_note("W1", "ms"))
    a = value("W1L", "A")
    target("W1 on 100k messages, warm: A ≤ 50 ms median", None if a is None else a <= 50,
           f"A {fmt(a)} ms, C {fmt(value('W1L', 'C'))} ms, B {fmt(value('W1L', 'B'))} ms"
           + cold_note("W1L", "ms"))
    a, c = value("W2", "A"), value("W2", "C")
    rc = ratio(a, c)
    target("W2 A/C ≥ 1.0 MB/s", None if rc is None else rc >= 1.0,
           f"A/C = {fmt(rc, 2)}, {fmt(a)} vs {fmt(c)} MB/s" + cold_note("W2", "MB/s"))
    a, b, c = value("W4", "A"), value("W4", "B"), value("W4", "C")
    rc, rb = ratio(a, c), ratio(a, b)
    target("W4 A/C ≥ 1.0 sessions/s", None if rc is None else rc >= 1.0,
           f"A/C = {fmt(rc, 2)}, {fmt(a)} vs {fmt(c)} sessions/s" + cold_note("W4", "sessions/s"))
    target("W4 A ≥ 3 × B sessions/s", None if rb is None else rb >= 3.0,
           f"A/B = {fmt(rb, 2)}, {fmt(a)} vs {fmt(b)} sessions/s")
    a, c = value("W5", "A"), value("W5", "C")
    rc = ratio(a, c)
    target("W5 (TLS) A/C ≥ 0.9 MB/s", None if rc is None else rc >= 0.9,
           f"A/C = {fmt(rc, 2)}, {fmt(a)} vs {fmt(c)} MB/s" + cold_note("W5", "MB/s"))
    return ["\n## Issue 14 targets\n",
            "For popbridge warm (its defaults); the cold figures beside them are for "
            "comparison and have no target.\n"] + lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", required=True)
    parser.add_argument("--markdown")
    parser.add_argument("--chart-data")
    parser.add_argument("--date", default="")
    parser.add_argument("--nproc", default="")
    parser.add_argument("--cpu", default="")
    parser.add_argument("--command", default="")
    parser.add_argument("--reps", default="")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--elapsed", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--w4-sessions", type=int, default=500)
    parser.add_argument("--dovecot", default="")
    parser.add_argument("--load", default="")
    parser.add_argument("--revision", default="")
    parser.add_argument("--top-lines", type=int, default=5)
    parser.add_argument("--modes", default="warm")
    parser.add_argument("--w1l-messages", type=int, default=100000)
    parser.add_argument("--w6-devices", type=int, default=1000)
    parser.add_argument("--w6-new", type=int, default=5)
    parser.add_argument("--w7-devices", type=int, default=1000)
    parser.add_argument("--w7-note", default="")
    parser.add_argument("--clk-tck", type=float, default=100.0)
    args = parser.parse_args()
    TITLES["W1L"] = f"W1 poll, {args.w1l_messages:,} messages"

    runs = parse(args.raw)
    workloads = [w for w in TITLES if any((w, e) in runs for e in ENDPOINTS)]

    def get(workload, endpoint):
        return runs.get((workload, endpoint), [])

    failures = {}
    for (workload, endpoint), items in runs.items():
        # A size mismatch also fails its session, so it is already in "failed".
        failed = total(items, "failed") + total(items, "harness_error")
        failures[(workload, endpoint)] = int(failed)

    # Rows: (workload, figure, values per endpoint, better: "lower" | "higher" | None)
    rows = []
    chart = []  # (title, A's advantage over B, over C): > 1 means popbridge is better
    figures = {}
    for w in workloads:
        if w in ("W1", "W1L"):
            med = {e: median(get(w, e), "median_ms") for e in ENDPOINTS}
            p95 = {e: median(get(w, e), "p95_ms") for e in ENDPOINTS}
            rows.append((w, "median session time (ms)", med, "lower"))
            rows.append((w, "p95 session time (ms)", p95, "lower"))
            chart.append((TITLES[w], ratio(med["B"], med["A"]), ratio(med["C"], med["A"])))
            figures[w] = med
        elif w == "W3T":
            top = f"TOP 1 {args.top_lines}"
            cmd = {e: median(get(w, e), "top_median_ms") for e in ENDPOINTS}
            ses = {e: median(get(w, e), "median_ms") for e in ENDPOINTS}
            rows.append((w, f"{top} time (ms): the command alone, median", cmd, "lower"))
            rows.append((w, f"{top} session time (ms): connect, USER, PASS, {top}, QUIT",
                         ses, "lower"))
            # Not charted: B's TOP takes about as long as its RETR of the whole message, and a
            # bar of some hundreds would flatten every other one.
            figures[w] = cmd
        else:
            key = "sessions_per_s" if w == "W4" else "mb_per_s"
            label = "sessions per second" if w == "W4" else "download MB/s"
            if w == "W5":
                label = "download MB/s, implicit TLS"
            values = {e: median(get(w, e), key) for e in ENDPOINTS}
            rows.append((w, label, values, "higher"))
            chart.append((TITLES[w], ratio(values["A"], values["B"]),
                          ratio(values["A"], values["C"])))
            figures[w] = values
        rows.append((w, "failed sessions (all reps)" if w != "W3T"
                     else f"failed TOP 1 {args.top_lines} sessions (all reps)",
                     {e: float(failures.get((w, e), 0)) if get(w, e) else None
                      for e in ENDPOINTS}, None))
        a_runs = get(w, "A")
        hwm = max((r["pb_hwm_kb"] for r in a_runs if isinstance(r.get("pb_hwm_kb"), float)),
                  default=None)
        if w in ("W3", "W4") and hwm is not None:
            rows.append((w, "popbridge peak RSS (MB)", {"A": hwm / 1024}, None))
            figures[w + "_hwm_kb"] = hwm
        if w == "W3T":
            top_io = io_per_command(a_runs)
            retr_io = io_per_command(get("W3", "A"))
            figures["W3T_io"] = top_io
            figures["W3_io"] = retr_io
            both = f"{fmt(top_io)} / {fmt(retr_io)}"
            rows.append((w, f"popbridge upstream bytes read, TOP 1 {args.top_lines} / RETR 1"
                         " (per command)", {"A": both}, None))
            per_session = [r["pb_rchar"] / r["ok"] for r in a_runs
                           if isinstance(r.get("pb_rchar"), float) and r.get("ok", 0) > 0]
            if per_session:
                rows.append((w, f"popbridge bytes read per TOP 1 {args.top_lines} session"
                             " (login, SELECT, TOP, QUIT)",
                             {"A": statistics.median(per_session)}, None))
        if w == "W4" and a_runs:
            base = median(a_runs, "pb_base_kb")
            per = [(r["pb_hwm_kb"] - r["pb_base_kb"]) / max(r.get("sessions", 1.0), 1.0)
                   for r in a_runs if isinstance(r.get("pb_hwm_kb"), float)]
            cpu = [r["pb_cpu_s"] / max(r.get("ok", 0.0), 1.0) for r in a_runs
                   if isinstance(r.get("pb_cpu_s"), float)]
            per_kb = statistics.median(per) if per else None
            cpu_ms = statistics.median(cpu) * 1000 if cpu else None
            rows.append((w, "popbridge RSS base before the run (MB)",
                         {"A": base / 1024 if base else None}, None))
            rows.append((w, "popbridge RSS growth per session (KB)", {"A": per_kb}, None))
            rows.append((w, "popbridge CPU ms per session", {"A": cpu_ms}, None))
            figures["W4_per_kb"] = per_kb
            figures["W4_cpu_ms"] = cpu_ms

    out = []
    out.append("# popbridge benchmark results\n")
    out.append(f"- **Date:** {args.date}")
    out.append(f"- **Machine:** `nproc` = {args.nproc}, CPU: {args.cpu}")
    if args.load:
        out.append(f"- **Load average** (1/5/15 min) at the start and the end: {args.load}."
                   " Other work on the machine shows up in the figures.")
    out.append(f"- **Command:** `{args.command}`")
    out.append(f"- **Repetitions:** {args.reps} per endpoint, in the order A, A cold, B, C, A ..."
               " (W6: A, A cold, B; W4S: workers = 1, 2); each figure is the median over the"
               " repetitions")
    out.append(f"- **popbridge:** Release build of `{args.revision}`,"
               f" `workers = {args.workers}`; peers: Dovecot {args.dovecot}")
    if args.elapsed:
        out.append(f"- **Run time:** {args.elapsed} s")
    if args.note:
        out.append(f"- **Note:** {args.note}")
    out.append("")
    out.append("A = popbridge in front of Dovecot IMAP, B = Dovecot POP3 with the imapc "
               "backend in front of the same IMAP server, C = Dovecot's own POP3 on the "
               "Maildir. MB = 10^6 bytes of message data (after un-dot-stuffing). "
               "**Warm** A is popbridge with its defaults (upstream session pool, snapshot "
               "cache and RETR read-ahead on); **cold** A has all three off (`pool_idle = "
               "\"0s\"`, `snapshot_cache = false`, `read_ahead = false`). popbridge is "
               "restarted before every run, so the first session of a run is always cold; "
               f"modes run: {args.modes}.\n")
    out.append("Ratios are A (warm) divided by B (or C), and A cold divided by C. For times "
               "lower is better, so a ratio below 1 means popbridge is faster; for MB/s and "
               "sessions/s a ratio above 1 means popbridge is faster. The last column says "
               "which way is better.\n")
    out.append("| Workload | Figure | " + " | ".join(NAMES[e] for e in ENDPOINTS) +
               " | A/B | A/C | A cold/C | Better |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for w, label, values, better in rows:
        digits = 2 if label.startswith("popbridge CPU") else 1
        cells = ["–" if values.get(e) is None
                 else values[e] if isinstance(values[e], str)
                 else str(int(values[e])) if label.startswith("failed")
                 else fmt(values[e], digits) for e in ENDPOINTS]
        if better:
            ab = ratio(values.get("A"), values.get("B"))
            ac = ratio(values.get("A"), values.get("C"))
            cc = ratio(values.get("Acold"), values.get("C"))
            r = ["n/a" if x is None else f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"
                 for x in (ab, ac, cc)]
            direction = "lower" if better == "lower" else "higher"
        else:
            r = ["", "", ""]
            direction = ""
        out.append(f"| {TITLES[w]} | {label} | " + " | ".join(cells) +
                   f" | {r[0]} | {r[1]} | {r[2]} | {direction} |")

    # Targets of issue 5.
    targets = []

    def target(name, ok, detail):
        if ok is None:
            targets.append(f"- **{name}:** not measured ({detail})")
        else:
            targets.append(f"- **{name}:** {'met' if ok else 'MISSED'} ({detail})")

    def check(value, op):
        return None if value is None else op(value)

    if "W1" in figures:
        f = figures["W1"]
        rb, rc = ratio(f["A"], f["B"]), ratio(f["A"], f["C"])
        target("W1 A ≤ 0.5 × B session time", check(rb, lambda x: x <= 0.5),
               f"A/B = {fmt(rb, 2)}, median {fmt(f['A'])} ms vs {fmt(f['B'])} ms")
        target("W1 A ≤ 1.3 × C session time", check(rc, lambda x: x <= 1.3),
               f"A/C = {fmt(rc, 2)}, median {fmt(f['A'])} ms vs {fmt(f['C'])} ms")
    if "W2" in figures:
        f = figures["W2"]
        rb, rc = ratio(f["A"], f["B"]), ratio(f["A"], f["C"])
        target("W2 A ≥ 1.5 × B MB/s", check(rb, lambda x: x >= 1.5),
               f"A/B = {fmt(rb, 2)}, {fmt(f['A'])} vs {fmt(f['B'])} MB/s")
        target("W2 A ≥ 0.8 × C MB/s", check(rc, lambda x: x >= 0.8),
               f"A/C = {fmt(rc, 2)}, {fmt(f['A'])} vs {fmt(f['C'])} MB/s")
    if "W3" in figures:
        f = figures["W3"]
        rc = ratio(f["A"], f["C"])
        target("W3 A ≥ 0.9 × C MB/s", check(rc, lambda x: x >= 0.9),
               f"A/C = {fmt(rc, 2)}, {fmt(f['A'])} vs {fmt(f['C'])} MB/s")
        hwm = figures.get("W3_hwm_kb")
        target("W3 popbridge peak RSS < 32 MB", check(hwm, lambda x: x < 32 * 1024),
               f"{fmt(hwm / 1024 if hwm else None)} MB for a 50 MB message")
    if "W4" in figures:
        f = figures["W4"]
        failed = sum(failures.get(("W4", e), 0) for e in ENDPOINTS)
        failed_a = failures.get(("W4", "A"), 0)
        target("W4 zero failures", failed_a == 0 if get("W4", "A") else None,
               f"A: {failed_a}; all endpoints: {failed}")
        rb = ratio(f["A"], f["B"])
        target("W4 A ≥ 2 × B sessions/s", check(rb, lambda x: x >= 2),
               f"A/B = {fmt(rb, 2)}, {fmt(f['A'])} vs {fmt(f['B'])} sessions/s")
        per = figures.get("W4_per_kb")
        target("W4 popbridge peak RSS ≤ 64 KB per session + base", check(per, lambda x: x <= 64),
               f"{fmt(per)} KB per session over a base of "
               f"{fmt(median(get('W4', 'A'), 'pb_base_kb') / 1024 if get('W4', 'A') else None)}"
               f" MB, {args.w4_sessions} concurrent sessions")
    if "W5" in figures and "W2" in figures:
        a2, a5 = figures["W2"]["A"], figures["W5"]["A"]
        # Same bytes in both, so the time ratio is the inverse of the MB/s ratio.
        cost = ratio(a2, a5)
        target("W5 TLS costs A ≤ 1.5 × its W2 time", check(cost, lambda x: x <= 1.5),
               f"W5 time / W2 time = {fmt(cost, 2)}: {fmt(a5)} MB/s with TLS, {fmt(a2)} without")
    if targets:
        out.append("\n## Issue 5 targets\n")
        out.extend(targets)
    if "W3T" in figures:
        targets = []
        top_io, retr_io = figures.get("W3T_io"), figures.get("W3_io")
        share = ratio(top_io, retr_io)
        target(f"W3 TOP 1 {args.top_lines} reads under 200 KB from the upstream",
               check(top_io, lambda x: x < 200 * 1000),
               f"{fmt(top_io)} bytes per TOP 1 {args.top_lines}: popbridge's rchar around the"
               " command, which counts the 9 bytes of the command line too; "
               + (f"RETR 1 of the same message: {fmt(retr_io)} bytes" if retr_io is not None
                  else "RETR 1 not measured in this run")
               + (f", so TOP reads {share * 100:.2f}% of it" if share is not None else ""))
        out.append("\n## Session split target (issue 10)\n")
        out.extend(targets)

    out.extend(w6_section(runs, args))
    out.extend(w7_section(runs, args))
    out.extend(scaling_section(runs, args))
    out.extend(issue14_section(figures, runs))

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w") as md:
            md.write(text)
            md.write("\n![A's advantage per workload](ratios.svg)\n")
    if args.chart_data:
        with open(args.chart_data, "w") as data:
            data.write("# workload\tA_vs_B\tA_vs_C (>1: popbridge better)\n")
            for title, b, c in chart:
                data.write(f"\"{title}\"\t{b if b is not None else 0:.4f}\t"
                           f"{c if c is not None else 0:.4f}\n")

    harness_broken = any(v > 0 for v in failures.values())
    if harness_broken:
        sys.stderr.write("report: some sessions failed or RETR sizes did not match LIST\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
