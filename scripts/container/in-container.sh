#!/bin/sh
# Inside one container of the container stage (scripts/container/in-vm.sh):
# run each listed test in its own process, as nextest does, and fail if any
# fails or none ran. A line of the list: <test binary> <test name> [VAR=value ...]
# usage: in-container.sh <tests file>
tests=$1
id hostd >/dev/null 2>&1 || { echo "CT-FAIL no hostd user in the container (in-vm.sh makes it)"; exit 1; }
cd /tmp || exit 1
passed=0 failed=0
while read -r test_bin name vars; do
  [ -n "$test_bin" ] || continue
  t0=$(date +%s)
  # shellcheck disable=SC2086 # VAR=value words
  if env $vars "$test_bin" --exact "$name" --nocapture --test-threads=1 >/tmp/test.log 2>&1 </dev/null \
     && grep -q '^test result: ok. 1 passed' /tmp/test.log; then
    echo "CT-PASS $name $(($(date +%s) - t0))s"
    passed=$((passed + 1))
  else
    tail -n 80 /tmp/test.log
    echo "CT-FAIL $name $(($(date +%s) - t0))s"
    failed=$((failed + 1))
  fi
done < "$tests"
echo "CT-SUMMARY passed=$passed failed=$failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
