#!/usr/bin/env bash
# End-to-end tests of the bayeswatch command line: replay determinism,
# bad-row handling (golden stderr), exit codes, column order, timestamps.
# usage: cli_test.sh BAYESWATCH SOURCE_DIR
set -u
bin=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "ok - $1"; }
bad() { fails=$((fails + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# A slice of the sample: every model kind, fusion included.
head -n 1500 "$src/tests/data/sample_telemetry.csv" > "$tmp/in.csv"

# 1. Determinism: same input and config -> byte-identical output.
"$bin" replay --config "$src/config/sample.yaml" --threats "$tmp/t1.csv" \
    "$tmp/in.csv" > "$tmp/s1.csv" 2> "$tmp/e1.txt"
rc=$?
"$bin" replay --config "$src/config/sample.yaml" --threats "$tmp/t2.csv" \
    "$tmp/in.csv" > "$tmp/s2.csv" 2> /dev/null
check "replay exits 0" "[ $rc -eq 0 ]"
check "scores are byte-identical across runs" "cmp -s '$tmp/s1.csv' '$tmp/s2.csv'"
check "threats are byte-identical across runs" "cmp -s '$tmp/t1.csv' '$tmp/t2.csv'"
check "one score row per input row" \
    "[ \$(wc -l < '$tmp/s1.csv') -eq \$(wc -l < '$tmp/in.csv') ]"
check "first columns are timestamp,value,anomaly_score" \
    "head -1 '$tmp/s1.csv' | grep -q '^timestamp,value,anomaly_score,'"
check "anomaly_score within [0,1]" \
    "awk -F, 'NR>1 && (\$3<0 || \$3>1) {exit 1}' '$tmp/s1.csv'"
check "summary line on stderr" "grep -q '^replay: .* 1499 rows, 1499 scored, 0 bad' '$tmp/e1.txt'"

# 2. Column order is free: shuffle the columns, same scores.
awk -F, 'BEGIN{OFS=","} {print $6,$5,$4,$3,$2,$1}' "$tmp/in.csv" > "$tmp/shuf.csv"
"$bin" replay --config "$src/config/sample.yaml" "$tmp/shuf.csv" \
    > "$tmp/s3.csv" 2> /dev/null
check "column order does not change scores" \
    "cmp -s <(cut -d, -f3- '$tmp/s1.csv') <(cut -d, -f3- '$tmp/s3.csv')"

# 3. Bad rows: precise messages (golden), skipped, counted, no crash.
(cd "$src/tests/data" && "$bin" replay --config bad_rows.yaml bad_rows.csv \
    > "$tmp/bad.csv" 2> "$tmp/bad.err")
rc=$?
check "bad rows do not fail the run" "[ $rc -eq 0 ]"
check "bad-row diagnostics match the golden file" \
    "diff -u '$src/tests/data/bad_rows.err' '$tmp/bad.err'"
check "good rows are scored, the late one flagged" \
    "[ \$(wc -l < '$tmp/bad.csv') -eq 7 ] && [ \$(awk -F, '\$19==1' '$tmp/bad.csv' | wc -l) -eq 1 ]"

# A read error is not the end of the input: exit non-zero with the error
# (getline's -1 was taken for the end, and the summary said all was read).
"$bin" replay "$tmp" > /dev/null 2> "$tmp/dir.err"
rc=$?
check "a read error fails the run with its reason" \
    "[ $rc -ne 0 ] && grep -q 'error: read: Is a directory' '$tmp/dir.err'"

# 4. Config exit codes and messages.
"$bin" check-config "$src/tests/data/config/many.yaml" > /dev/null 2> "$tmp/cc.err"
rc=$?
check "check-config exits 78 on errors" "[ $rc -eq 78 ]"
check "check-config reports every problem" "[ \$(wc -l < '$tmp/cc.err') -eq 5 ]"
check "messages are FILE:LINE:COL: error:" \
    "grep -q '^$src/tests/data/config/many.yaml:2:15: error: engine.max_series' '$tmp/cc.err'"
"$bin" check-config "$src/config/sample.yaml" > /dev/null 2> "$tmp/cs.err"
check "check-config accepts the sample" "[ $? -eq 0 ]"
check "the sample draws no warning" "[ ! -s '$tmp/cs.err' ]"
# A rule that can never reach high: a warning at its name, exit 0.
printf 'model:\n  fusion:\n    rules:\n      - name: pair\n        signals:\n          - metric: a\n          - metric: b\n' \
    > "$tmp/pair.yaml"
"$bin" check-config "$tmp/pair.yaml" > /dev/null 2> "$tmp/pair.err"
check "check-config exits 0 on a warning" "[ $? -eq 0 ]"
check "a rule that cannot reach high is a FILE:LINE:COL: warning" \
    "grep -q '^$tmp/pair.yaml:4:15: warning: model.fusion.rules\[0\].name: rule \"pair\" never reaches high' '$tmp/pair.err'"
"$bin" dump-config "$src/config/sample.yaml" > "$tmp/dump.yaml"
"$bin" check-config "$tmp/dump.yaml" > /dev/null
check "dump-config output is a valid config" "[ $? -eq 0 ]"
(cd "$src/tests/data" && "$bin" check-config kafka_props.yaml) > /dev/null \
    2> "$tmp/kp.err"
check "librdkafka rejects bad pass-through properties at their line (exit 78)" \
    "[ $? -eq 78 ] && cmp -s '$tmp/kp.err' '$src/tests/data/kafka_props.err'"
(cd "$src/tests/data" && "$bin" check-config kafka_security.yaml) > /dev/null \
    2> "$tmp/ks.err"
check "insecure TLS, unreadable secret files, a managed key in kafka.client refused at their line (78)" \
    "[ $? -eq 78 ] && cmp -s '$tmp/ks.err' '$src/tests/data/kafka_security.err'"
check "a secret read from a file is not shown" \
    "! grep -q hunter2 '$tmp/ks.err' && ! \"$bin\" dump-config \
     '$src/tests/data/kafka_security.yaml' 2>&1 | grep -q hunter2"
sed -e 's/^kafka:$/kafka:\n  allow_insecure: true/' -e '/no-such-secret/d' \
    -e '/^  producer:$/d' -e '/^  client:$/d' -e '/transactional.id: mine/d' \
    -e "s|file:kafka_secret.txt|file:$src/tests/data/kafka_secret.txt|" \
    "$src/tests/data/kafka_security.yaml" > "$tmp/ks_ok.yaml"
"$bin" check-config "$tmp/ks_ok.yaml" > /dev/null 2>&1
check "kafka.allow_insecure allows it; the secret file is read" "[ $? -eq 0 ]"
"$bin" check-config "$tmp/does-not-exist.yaml" 2> /dev/null
check "missing config exits 66" "[ $? -eq 66 ]"
"$bin" replay > /dev/null 2>&1
check "usage error exits 64" "[ $? -eq 64 ]"
"$bin" replay "$tmp/nope.csv" > /dev/null 2>&1
check "missing input exits 66" "[ $? -eq 66 ]"

# 5. Epoch milliseconds and civil timestamps are the same instants.
printf 'timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,2\n2026-01-01 00:02:00,1.5\n' > "$tmp/civil.csv"
printf 'timestamp,value\n1767225600000,1\n1767225660000,2\n1767225720000,1.5\n' > "$tmp/epoch.csv"
"$bin" replay "$tmp/civil.csv" 2> /dev/null | cut -d, -f2- > "$tmp/c.out"
"$bin" replay "$tmp/epoch.csv" 2> /dev/null | cut -d, -f2- > "$tmp/e.out"
check "epoch ms equals civil time" "cmp -s '$tmp/c.out' '$tmp/e.out'"

# 7. JSON output: one valid object per input row, threats as in CSV. The
#    contract between the two: JSON `probability` is CSV `p_point`, JSON
#    `p_collective` is CSV `p_collective`, and JSON `score` / 100 is CSV
#    `anomaly_score`, the larger of the two. Checked on the whole sample,
#    where blocks close and the block model is sometimes the larger.
full=$src/tests/data/sample_telemetry.csv
"$bin" replay --config "$src/config/sample.yaml" --threats "$tmp/tf.csv" \
    "$full" > "$tmp/sf.csv" 2> /dev/null
"$bin" replay --format json --config "$src/config/sample.yaml" \
    --threats "$tmp/t.json" "$full" > "$tmp/s.json" 2> /dev/null
check "json: one object per row, threats as in csv, probability = p_point, score = 100 x anomaly_score" \
    "python3 - '$tmp/s.json' '$tmp/t.json' '$tmp/sf.csv' '$tmp/tf.csv' <<'PY'
import csv, json, sys
s = [json.loads(l) for l in open(sys.argv[1])]
t = [json.loads(l) for l in open(sys.argv[2])]
c = list(csv.DictReader(open(sys.argv[3])))
ct = list(csv.DictReader(open(sys.argv[4])))
assert len(s) == len(c) and len(t) == len(ct), (len(s), len(c), len(t), len(ct))
close = lambda a, b: abs(a - b) <= 1e-8 * max(1.0, abs(a))
block_larger = 0
for j, r in zip(s, c):
    assert close(j['probability'], float(r['p_point']))
    assert close(j['score'], 100 * float(r['anomaly_score'])), (j['score'], r['anomaly_score'])
    if r['p_collective'] == '':
        assert j['p_collective'] is None
    else:
        assert close(j['p_collective'], float(r['p_collective']))
        block_larger += j['p_collective'] > j['probability']
    assert j['entity_id'] == '/'.join((r['region'], r['service'], r['metric']))
    # fields in the value's units are printed exactly: the JSON's doubles
    for jf, cf in (('typical', 'expected'), ('typical_lower', 'lower'),
                   ('typical_upper', 'upper'), ('actual', 'actual'),
                   ('population_mean', 'pop_mean'),
                   ('block_mean', 'block_mean'), ('block_typical', 'block_expected')):
        assert (j[jf] is None) == (r[cf] == ''), (jf, j[jf], r[cf])
        assert j[jf] is None or j[jf] == float(r[cf]), (jf, j[jf], r[cf])
assert block_larger > 0, 'no row where the block model is the larger: the contract is untested'
PY"

# 7b. A gauge at 1e10 with unit noise: its interval, a few units wide,
#     keeps its width in the CSV (at 9 significant digits it printed as
#     one number).
python3 -c '
import random
random.seed(5)
print("timestamp,value")
for i in range(300):
    print("%d,%r" % (1767225600000 + 60000 * i, 1e10 + random.gauss(0, 1)))' \
    > "$tmp/gauge.csv"
"$bin" replay "$tmp/gauge.csv" > "$tmp/gauge.out" 2> /dev/null
check "a gauge at 1e10: the interval's width survives the CSV" \
    "python3 - '$tmp/gauge.out' <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))[100:]
w = sorted(float(r['upper']) - float(r['lower']) for r in rows)
assert 2 < w[len(w) // 2] < 10, w[len(w) // 2]
PY"

# 6. A 3-hour outage of one region: stale markers once, no bogus anomaly
#    when its data resumes.
awk -F, 'NR == 1 || !($2 == "ap-south" && $1 > "2026-11-01 03:00:00" &&
    $1 < "2026-11-01 06:00:00")' "$tmp/in.csv" > "$tmp/gap.csv"
"$bin" replay --config "$src/config/sample.yaml" --stale "$tmp/stale.csv" \
    "$tmp/gap.csv" > "$tmp/gap_scores.csv" 2> /dev/null
check "silent series get one stale marker each" \
    "[ \$(awk -F, 'NR > 1 && \$2 == \"ap-south\"' '$tmp/stale.csv' | wc -l) -eq 5 ] &&
     [ \$(awk -F, 'NR > 1 && \$2 != \"ap-south\"' '$tmp/stale.csv' | wc -l) -eq 0 ]"
check "no anomaly when data resumes after the gap" \
    "awk -F, '\$4 == \"ap-south\" && \$1 >= \"2026-11-01 06:00:00\" &&
        \$1 < \"2026-11-01 06:30:00\" && \$3 >= 0.5 {exit 1}' '$tmp/gap_scores.csv'"

# 8. Late events beyond engine.lateness_ms: INPUT:LINE: late: ..., counted
#    late, not bad, no row (the README's contract).
printf 'engine:\n  lateness_ms: 60000\n' > "$tmp/late.yaml"
printf 'timestamp,value\n1767225600000,1\n1767225900000,2\n1767225660000,1.5\n' \
    > "$tmp/late.csv"
(cd "$tmp" && "$bin" replay --config late.yaml late.csv > late.out 2> late.err)
check "late: reported as INPUT:LINE: late:, counted late, no row" \
    "grep -qx 'late.csv:4: late: event 240000 ms behind the watermark (lateness 60000 ms)' '$tmp/late.err' &&
     grep -q ' 3 rows, 2 scored, 0 bad, 1 late,' '$tmp/late.err' &&
     [ \$(wc -l < '$tmp/late.out') -eq 3 ]"

# 9. RFC 4180 output: quoted input fields with commas and quotes come out
#    quoted, so every row keeps its columns; a header too wide says so.
printf 'timestamp,value,region,service\n1767225600000,1,"eu,west","say ""hi"""\n1767225660000,2,"eu,west","say ""hi"""\n' \
    > "$tmp/quoted.csv"
"$bin" replay --threats "$tmp/qt.csv" --stale "$tmp/qs.csv" "$tmp/quoted.csv" \
    > "$tmp/quoted.out" 2> /dev/null
check "csv output quotes fields per RFC 4180" \
    "python3 - '$tmp/quoted.out' <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
assert len(rows) == 3 and all(len(r) == len(rows[0]) for r in rows), rows
h = rows[0]
for r in rows[1:]:
    assert r[h.index('region')] == 'eu,west' and r[h.index('service')] == 'say \"hi\"', r
PY"
python3 -c 'print(",".join(["timestamp", "value"] + ["c%d" % i for i in range(70)]))' \
    > "$tmp/wide.csv"
(cd "$tmp" && "$bin" replay wide.csv > /dev/null 2> wide.err)
check "a header wider than 64 columns says so" \
    "[ $? -ne 0 ] && grep -qx 'wide.csv:1: error: header: more than 64 columns' '$tmp/wide.err'"

# 10. Input the header or a row gets wrong says where and what: a quote
#     inside an unquoted field (the rest of a quoted field that spanned
#     lines is not scored as a row), a known column named twice; a UTF-8
#     byte order mark (a spreadsheet's export) is no part of the header.
printf '\xef\xbb\xbftimestamp,value,note\n1767225600000,5,"see\n1767225660000,6,ticket"\n1767225720000,7,ok\n' \
    > "$tmp/bom.csv"
(cd "$tmp" && "$bin" replay bom.csv > bom.out 2> bom.err)
check "a byte order mark is skipped; a stray quote is a bad row" \
    "grep -q 'bom.csv:2: error: malformed CSV' '$tmp/bom.err' &&
     grep -q 'bom.csv:3: error: malformed CSV' '$tmp/bom.err' &&
     grep -q ' 3 rows, 1 scored, 2 bad' '$tmp/bom.err'"
printf 'timestamp,value,region,value\n1767225600000,5,eu,6\n' > "$tmp/dup.csv"
(cd "$tmp" && "$bin" replay dup.csv > /dev/null 2> dup.err)
check "a column named twice in the header says so" \
    "[ $? -ne 0 ] && grep -qx 'dup.csv:1: error: header names the column value twice' '$tmp/dup.err'"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
