#!/usr/bin/env bash
# Real shapes offline: fetches research meshes through Debian's package manager and converts
# them into the ModelNet40-normal layout at data/real/cgal (class folders, split files).
# Idempotent: the package is downloaded once into data/real/cache; re-running re-converts.
# Nothing here is fetched by the library at run time.
#
# Source: the Debian package libcgal-demo (source package cgal), whose data.tar.gz holds the
# meshes of CGAL's examples (armadillo-like scans, mechanical parts, test meshes). CGAL is
# GPL-3+/LGPL-3+; Debian's copyright file for it ships in libcgal-dev. The meshes are converted
# locally and never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
points="${1:-10000}"
cache=data/real/cache
mkdir -p "$cache"
start=$(date +%s)
if ! ls "$cache"/libcgal-demo_*.deb >/dev/null 2>&1; then
    (cd "$cache" && { apt-get download libcgal-demo 2>/dev/null || { apt-get update -qq && apt-get download libcgal-demo; }; })
fi
rm -rf "$cache/pkg" "$cache/meshes"
mkdir -p "$cache/pkg" "$cache/meshes"
dpkg-deb -x "$cache"/libcgal-demo_*.deb "$cache/pkg"
tar -xzf "$cache/pkg/usr/share/doc/libcgal-dev/data.tar.gz" -C "$cache/meshes" data/meshes
rm -rf "$cache/pkg"
rm -rf data/real/cgal
cargo run --release -q -p tensor-frames -- data convert \
    --meshes "$cache/meshes/data/meshes" --out data/real/cgal --points "$points"
echo "data-real: $(( $(date +%s) - start )) s, $(du -sh data/real | cut -f1) on disk (data/real)"
