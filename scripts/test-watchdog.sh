#!/usr/bin/env bash
# Runs a test command with a time limit. The suite takes minutes; a run past
# the limit has hung, and CI would otherwise cut it off at its own limit with
# the log's last, still buffered, lines lost. Past the limit this prints the
# tests that started and did not finish, the process tree, and the stacks of
# the test runner's threads (with gdb), then stops the run and exits 124.
# Output is line-buffered (stdbuf), so the log is complete up to the hang.
#   test-watchdog.sh SECONDS COMMAND...
set -uo pipefail
limit=${1:?usage: test-watchdog.sh SECONDS COMMAND...}
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A session of its own: the whole tree (swift test, the test runner, the
# tools it started) can be stopped as one process group.
setsid stdbuf -oL -eL "$@" > >(tee "$log") 2>&1 &
leader=$!
started=$SECONDS
while kill -0 "$leader" 2>/dev/null; do
  if (( SECONDS - started > limit )); then
    echo
    echo "test-watchdog: the tests still ran after $limit s; started and not finished:"
    python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
started = re.findall(r'◇ Test "(.*?)" started', text)
finished = set(re.findall(r'[✔✘] Test "(.*?)" (?:passed|failed|with)', text))
for name in dict.fromkeys(started):
    if name not in finished:
        print("  " + name)
PY
    echo "test-watchdog: processes:"
    ps -o pid,ppid,etime,stat,wchan:24,args --forest -g "$leader" | cut -c1-240
    if command -v gdb >/dev/null; then
      for pid in $(pgrep -g "$leader" -f 'PackageTests.xctest'); do
        echo "test-watchdog: threads of $pid:"
        timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(Thread|#)' | cut -c1-200
      done
    fi
    kill -TERM -- "-$leader" 2>/dev/null
    sleep 5
    kill -KILL -- "-$leader" 2>/dev/null
    exit 124
  fi
  sleep 2
done
wait "$leader"
