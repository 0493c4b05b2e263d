# Shared by bench/kafka.sh and bench/state.sh (sourced; they set build,
# brokers, kb, dir, tag and n): timing a stage run by a read_committed
# reader of its scores, and summarising runs.

rate_of() { sed -n 's/.*: \([0-9]*\) records\/s.*/\1/p' "$1"; }

# NAME PARTITIONS: run `bayeswatch run --config $dir/NAME.yaml` on fresh
# output topics (tag.NAME.{s,t,d}) until the reader has seen n scores;
# prints the reader's rate. The stage's log is $dir/NAME.log.
time_stage() {
    "$build/tests/bw_topics" "$brokers" "$2" "$tag.$1.s" "$tag.$1.t" \
        "$tag.$1.d"
    "$kb" tail "$brokers" "$tag.$1.s" "$n" > "$dir/$1.tail" &
    local tail=$! stage
    "$build/bayeswatch" run --config "$dir/$1.yaml" 2> "$dir/$1.log" &
    stage=$!
    wait $tail
    kill -TERM $stage
    wait $stage
    rate_of "$dir/$1.tail"
}

# LABEL VALUES...: median (min-max) over the runs; $unit (if set) follows
# the median.
summary() {
    local label=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v l="$label" -v u="${unit:-}" '
        {x[NR] = $1} END {
            m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
            printf "%-44s median %9.0f%s (min %.0f, max %.0f; %d runs)\n",
                   l, m, u, x[1], x[NR], NR }'
}
