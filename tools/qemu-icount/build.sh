#!/bin/sh
# Builds the icount TCG plugin: tools/qemu-icount/build.sh [OUT.so]  (default: ./libicount.so)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-libicount.so}
${CC:-gcc} -O2 -Wall -Wextra -shared -fPIC -o "$out" "$here/icount.c"
echo "$out"
