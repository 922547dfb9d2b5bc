#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# git workload for tools/bench: init a repository in $1, make $2 commits that
# each edit and add generated source files, then gc, log and diff. Every git
# process inherits LD_PRELOAD, so all of them run on the allocator under test.
# Fixed identities and dates make the commit ids, printed last, deterministic.
set -eu
work=$1
commits=$2
export HOME="$work" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_AUTHOR_DATE='2024-01-01T00:00:00+0000' GIT_COMMITTER_DATE='2024-01-01T00:00:00+0000'

git init -q -b main "$work/repo"
cd "$work/repo"
mkdir src
i=0
while [ "$i" -lt "$commits" ]; do
  f=0
  while [ "$f" -lt 24 ]; do
    # Each commit touches a rotating third of the files: deltas for gc to find.
    if [ $(( (f + i) % 3 )) -eq 0 ]; then
      line=0
      while [ "$line" -lt 12 ]; do
        printf 'int f%d_%d_%d(int x) { return x * %d + %d; }\n' "$f" "$i" "$line" "$((i * 7 + line))" "$f" >> "src/m$f.c"
        line=$((line + 1))
      done
    fi
    f=$((f + 1))
  done
  if [ $((i % 10)) -eq 0 ]; then
    printf 'release %d\n' "$i" > "src/release$i.txt"
  fi
  git add -A
  git commit -q -m "commit $i"
  i=$((i + 1))
done
git gc -q --aggressive
git log --stat --format='%H %s' > /dev/null
git diff --stat HEAD~$((commits / 2)) HEAD > /dev/null
git rev-parse HEAD
git count-objects -v | grep -E '^(count|in-pack):'
