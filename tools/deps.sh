#!/bin/sh
# Install the Debian packages a make target needs, when we can (root + apt),
# or print the exact command to run. Usage: tools/deps.sh build|test|bench|fuzz|docs
set -u
need=""
case "${1:-build}" in
  build) pkgs="lua5.4 liblua5.4-dev" ;;
  demo)  pkgs="lua5.4 liblua5.4-dev lua-lpeg" ;;
  test)  pkgs="lua5.4 liblua5.4-dev lua-lpeg lua-busted lua-check lua-cjson luarocks pkg-config" ;;
  bench) pkgs="lua5.4 liblua5.4-dev lua-lpeg lua-cjson lua-sql-sqlite3 liblmdb-dev" ;;
  fuzz)  pkgs="clang libclang-rt-14-dev" ;;
  docs)  pkgs="lua-ldoc lua-markdown" ;;
  *) echo "tools/deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "memmap3: installing Debian packages:$need"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine's package lists may be empty: update once, then install.
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends $need >/dev/null || {
    echo "memmap3: apt-get install failed; run: apt-get update && apt-get install -y$need" >&2
    exit 1
  }
  exit 0
fi
echo "memmap3: missing Debian packages. Run:" >&2
echo "  sudo apt-get update && sudo apt-get install -y$need" >&2
exit 1
