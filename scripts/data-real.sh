#!/usr/bin/env bash
# Real shapes offline: fetches research meshes through Debian's package manager and converts
# them into the ModelNet40-normal layout: data/real/cgal (research meshes, one class) and
# data/real/kicad (CAD parts in 90 categories).
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

# 2. A categorised real set: KiCad's 3D library (Debian package kicad-packages3d, 379 MB,
#    about 6,200 CAD models of electronic parts in 90 categories as VRML). Only the first
#    KICAD_PER_CLASS models of each category (in archive order, so the choice is fixed for a
#    package version) are extracted; licence CC-BY-SA 4.0 with KiCad's library exception.
per_class="${KICAD_PER_CLASS:-20}"
kicad_points="${KICAD_POINTS:-2048}"
# Another folder keeps the default set, e.g. KICAD_POINTS=8192 KICAD_OUT=data/real/kicad8k for
# the denser test of papers/tensor-frames/results/normals-real-kicad8k.md (same shapes, same split).
kicad_out="${KICAD_OUT:-data/real/kicad}"
if ! ls "$cache"/kicad-packages3d_*.deb >/dev/null 2>&1; then
    (cd "$cache" && { apt-get download kicad-packages3d 2>/dev/null || { apt-get update -qq && apt-get download kicad-packages3d; }; })
fi
deb=$(ls "$cache"/kicad-packages3d_*.deb | head -1)
dpkg-deb --fsys-tarfile "$deb" | tar -t | grep '\.wrl$' \
    | awk -F/ -v k="$per_class" '{ c = $(NF-1); if (n[c]++ < k) print }' > "$cache/kicad-files.txt"
rm -rf "$cache/kicad" "$kicad_out"
mkdir -p "$cache/kicad"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/kicad" -T "$cache/kicad-files.txt"
cargo run --release -q -p tensor-frames -- data convert \
    --meshes "$cache/kicad/usr/share/kicad/3dmodels" --out "$kicad_out" --points "$kicad_points"
rm -rf "$cache/kicad"
echo "data-real: $(( $(date +%s) - start )) s, $(du -sh data/real | cut -f1) on disk (data/real)"
