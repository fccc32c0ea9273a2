#!/bin/bash
# spec/lockwait.sh [ROUNDS] (run by spec/lockwait_spec.lua, #slow): each round, H holds the file's lock for 30 ms at a time,
# 4 other processes wait for it and are killed (SIGKILL) at random moments, and B waits for
# it too. Then everybody but B stops: B must get the lock within a second. Needs
# LUA_PATH/LUA_CPATH for memmap3.
P=$(mktemp -u /tmp/lws.XXXXXX.mm3)
T="mm.struct('LS', {{'n', 'u64', atomic = true}})"
${LUA:-lua5.4} -e "local mm = require 'memmap3'; mm.close(assert(mm.create('$P', $T)))"
hung=0
for round in $(seq 1 ${1:-50}); do
  ${LUA:-lua5.4} -e "local mm = require 'memmap3'; local s = assert(mm.open('$P', $T))
    local t0 = os.clock()
    while true do mm.lock(s, function() local t = os.clock() while os.clock() - t < 0.03 do end end) end" & H=$!
  sleep 0.2
  pids=""
  for v in 1 2 3 4; do
    timeout -s KILL 0.$((RANDOM % 5 + 3))$((RANDOM % 10)) ${LUA:-lua5.4} -e "local mm = require 'memmap3'; local s = assert(mm.open('$P', $T))
      while true do mm.lock(s, function() end) end" 2>/dev/null & pids="$pids $!"
  done
  sleep 0.1
  ${LUA:-lua5.4} -e "local mm = require 'memmap3'; local s = assert(mm.open('$P', $T))
    while true do mm.lock(s, function() end) s.n:fetch_add(1) end" & B=$!
  wait $pids 2>/dev/null
  kill -KILL $H; wait $H 2>/dev/null
  # now only B uses the lock: it must make progress
  n() { ${LUA:-lua5.4} -e "local mm = require 'memmap3'; print(assert(mm.open('$P', $T, {readonly = true})).n:load())"; }
  a=$(n); sleep 1; b=$(n)
  if [ "$a" == "$b" ]; then
    hung=$((hung + 1))
    echo "round $round: B ($B) made no progress in 1 s alone (wchan $(cat /proc/$B/wchan)); another process takes the lock:"
    ${LUA:-lua5.4} -e "local mm = require 'memmap3'; local s = assert(mm.open('$P', $T)); mm.lock(s, function() print('  ... at once') end)"
    sleep 1; c=$(n); [ "$b" == "$c" ] && echo "  B still stuck (wchan $(cat /proc/$B/wchan))"
  fi
  kill -KILL $B; wait $B 2>/dev/null
done 2>/dev/null
echo "$hung of ${1:-50} rounds left B asleep with the lock free"
rm -f $P
