#!/usr/bin/env bash
# Installs, from Debian's packages, the programs the suite needs beside Python: Java 17 and Maven (to
# resolve and run the JVM side), a PostgreSQL server and a Redis server (local services for tests and
# the demo), and Chromium (a test renders the demo's report headless). Anything already present is left
# alone, so this is quick and offline on a second run.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "system packages missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
  exit 1
fi

echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# The Debian packages start their own servers where they can; the suite runs its own instances on
# other ports, so those are harmless, and policy-rc.d keeps them from starting in containers.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]}"
