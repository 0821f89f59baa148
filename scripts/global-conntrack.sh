# Sourced by the benchmarks that change the global conntrack values
# (nf_conntrack_max, the hash size): the test suite's lock and saved-values
# protocol (GlobalConntrack in Tests/TunerTests/Support/Kernel.swift), so no
# test changes them while a benchmark runs, and the other way round.
#   . scripts/global-conntrack.sh
#   global_conntrack_take          # waits for the lock; sets saved_max, saved_buckets
#   trap 'global_conntrack_restore' EXIT
global_conntrack_lock=/run/cttune-tests.lock
global_conntrack_saved=/run/cttune-tests.saved
global_conntrack_max=/proc/sys/net/netfilter/nf_conntrack_max
global_conntrack_buckets=/proc/sys/net/netfilter/nf_conntrack_buckets

# Takes the lock (descriptor 9). Values left by a holder that was killed
# mid-run are restored first; ours are saved the same way while we change them.
global_conntrack_take() {
  exec 9>"$global_conntrack_lock"
  flock 9
  if [ -f "$global_conntrack_saved" ]; then
    local left_max left_buckets
    read -r left_max left_buckets < "$global_conntrack_saved"
    echo "$left_buckets" > "$global_conntrack_buckets"
    echo "$left_max" > "$global_conntrack_max"
  fi
  saved_max=$(cat "$global_conntrack_max")
  saved_buckets=$(cat "$global_conntrack_buckets")
  echo "$saved_max $saved_buckets" > "$global_conntrack_saved"
}

# Puts back the values found by global_conntrack_take.
global_conntrack_restore() {
  echo "$saved_buckets" > "$global_conntrack_buckets"
  echo "$saved_max" > "$global_conntrack_max"
  rm -f "$global_conntrack_saved"
}
