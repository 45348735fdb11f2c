#!/usr/bin/env bash
# make_seeds.sh: (re)writes tests/fuzz/seeds/ and tests/fuzz/assets/ from the documentation and
# the examples, so that the fuzzers start from every documented form. Run from anywhere; commit
# what it writes. Needs a C compiler, zlib, stb_image_write (libstb-dev) and tinyexr
# (libtinyexr-dev).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seeds=$here/seeds
assets=$here/assets
rm -rf "$seeds"
mkdir -p "$assets" "$seeds"/{scene,job,joblist,template,obj,ply,gltf,png,jpeg,hdr,exr}

# Every ```json (or ```jsonl) block of a page as one file: $1 page, $2 fence tag, $3 out prefix.
blocks() {
  awk -v tag="$2" -v out="$3" '
    $0 == "```" tag { n++; f = sprintf("%s%02d.%s", out, n, tag); inb = 1; next }
    inb && $0 == "```" { inb = 0; close(f); next }
    inb { print > f }' "$1"
}
blocks "$root/docs/SCENE.md" json "$seeds/scene/scene_md_"
blocks "$root/docs/JOBS.md" json "$seeds/job/jobs_md_"
blocks "$root/docs/JOBS.md" jsonl "$seeds/joblist/jobs_md_"
cp "$root/examples/cornell/scene.json" "$seeds/scene/cornell.json"
cp "$root/examples/cornell/orbit.json" "$root/examples/cornell/dataset.json" "$seeds/job/"
cp "$root/examples/cornell/dataset.jsonl" "$seeds/joblist/"
cat > "$seeds/scene/textures.json" <<'J'
{"camera": {"position": [0, 1, -4], "look_at": [0, 1, 0]},
 "materials": {"a": {"type": "diffuse", "texture": "wood.png"}, "b": {"type": "diffuse", "albedo": [1, 1, 1], "texture": "wood.jpg"}},
 "objects": [{"type": "sphere", "center": [0, 1, 0], "radius": 1, "material": "a"},
  {"type": "mesh", "file": "chair.obj", "material": "b", "instances": [{"translate": [1, 0, 0]}]},
  {"type": "mesh", "file": "bunny.ply", "material": "a", "transform": {"scale": 2}}],
 "environment": {"type": "map", "file": "sky.hdr", "rotation": 45, "intensity": 2}}
J
cat > "$seeds/scene/exr_map.json" <<'J'
{"camera": {"position": [0, 1, -4], "look_at": [0, 1, 0]},
 "objects": [{"type": "sphere", "center": [0, 1, 0], "radius": 1, "material": {"type": "diffuse"}}],
 "environment": {"type": "map", "file": "sky.exr", "rotation": -30, "intensity": 0.5}}
J

# The fixed files the inputs may name. The jobs' scene: the scene of docs/JOBS.md, with the
# materials and light that examples/cornell/dataset.jsonl names as well.
cp "$root/examples/cornell/cornell.obj" "$root/examples/cornell/cornell.mtl" "$assets/"
cp "$root/examples/cornell/dataset.jsonl" "$assets/"
cp "$seeds/joblist/jobs_md_01.jsonl" "$assets/list.jsonl"
awk '$0 == "```json scene" { inb = 1; next } inb && $0 == "```" { exit } inb' \
  "$root/docs/JOBS.md" |
  sed 's/^    "metal": \(.*\)$/    "metal": \1,\n    "white": { "type": "diffuse" }, "green": { "type": "diffuse", "albedo": [0.1, 0.5, 0.1] }/' |
  sed 's/^  "lights": \[$/  "lights": [\n    { "type": "quad", "name": "light", "corner": [0, 2, 0], "u": [0.1, 0, 0], "v": [0, 0, 0.1], "radiance": [1, 1, 1] },/' \
  > "$assets/scene.json"
printf 'newmtl seat\nKd 0.5 0.4 0.3\nmap_Kd wood.png\nnewmtl legs\nKd 0.2 0.2 0.2\nKe 1 1 1\n' \
  > "$assets/chair.mtl"
printf '%s\n' 'mtllib chair.mtl' 'o seat' 'v 0 0.5 0' 'v 1 0.5 0' 'v 1 0.5 1' 'v 0 0.5 1' \
  'vt 0 0' 'vt 1 0' 'vt 1 1' 'vt 0 1' 'vn 0 1 0' 'usemtl seat' 'f 1/1/1 2/2/1 3/3/1 4/4/1' \
  'o leg' 'v 0 0 0' 'v 0.1 0 0' 'usemtl legs' 'f 1 -2 -1' 'f 5//1 6//1 1//1' > "$assets/chair.obj"
printf '%s\n' ply 'format ascii 1.0' 'comment a tetrahedron' 'element vertex 4' \
  'property float x' 'property float y' 'property float z' 'property float nx' \
  'property float ny' 'property float nz' 'property float u' 'property float v' \
  'element face 2' 'property list uchar int vertex_indices' 'end_header' \
  '0 0 0 0 0 1 0 0' '1 0 0 0 0 1 1 0' '0 1 0 0 0 1 0 1' '0 0 1 0 0 1 1 1' '3 0 1 2' '4 0 1 2 3' \
  > "$assets/bunny.ply"

# Meshes: an OBJ, then "#%mtl" and its MTL (fuzz_obj.c); PLY files.
for m in cornell chair; do
  { sed "s/^mtllib .*/mtllib fuzz.mtl/" "$assets/$m.obj"; echo '#%mtl'; cat "$assets/$m.mtl"; } \
    > "$seeds/obj/$m.obj"
done
printf '%s\n' 'v 0 0 0' 'v 1 0 0' 'v 0 1 0' 'v 1 1 0' 'g ignored' 's 1' 'f -4 -3 -2 -1' \
  'l 1 2' > "$seeds/obj/bare.obj"
cp "$assets/bunny.ply" "$seeds/ply/ascii.ply"
# vertex colours (6 and 7 numbers), a weight, continuations, and an MTL with every key and map
# option kiln reads or warns about
printf '%s\n' 'mtllib fuzz.mtl' 'v 0 0 0 0.5 0.25 1' 'v 1 0 0 0 1 0 0.5' 'v 0 1 0 1' \
  'v 1 1 \' '0' 'vt 0 0' 'usemtl a' 'f 1/1 2/1 \' '3/1 4/1' 'usemtl b' 'f 1 2 3' '#%mtl' \
  'newmtl a' 'Kd 0.5 0.5 0.5' 'Ks 0.5 \' '0.5 0.5' 'Ka 1 1 1' 'Ns 250' 'Ni 1.45' 'd 0.5' \
  'Tr 0.25' 'illum 3' 'Pr 0.3' 'Pm 0.7' 'Ps 0.1' 'Ke 0 0 0' \
  'map_Kd -o 0.1 0.2 -s 2 3 1 -clamp on -blendu off -mm 0 1 c.png' 'map_Ks s.png' \
  'map_Ns -imfchan r n.png' 'map_d -t 1 1 a.png' 'map_Bump -bm 0.4 b.png' 'bump b.png' \
  'norm -texres 64 b.png' 'map_Ke e.png' 'map_Pr r.png' 'map_Pm -boost 2 m.png' \
  'newmtl b' 'illum 7' 'd -halo 0.5' 'foo bar' > "$seeds/obj/colours.obj"
printf '%s\n' ply 'format ascii 1.0' 'element vertex 3' 'property float x' 'property float y' \
  'property float z' 'property float red' 'property float green' 'property float blue' \
  'property list uchar int extra' 'element face 1' 'property list uchar uint vertex_index' \
  'property list uchar float texcoord' 'end_header' '0 0 0 0.5 0.25 1 2 7 8' '1 0 0 0 1 0 0' \
  '0 1 0 1 1 1 1 3' '3 0 1 2 2 0.5 0.5' > "$seeds/ply/colour_ascii.ply"

# Templates: a template line, a pass list, a format name (fuzz_template.c).
printf '{frame:05d}_{pass}.{ext}\ndepth,normal\npng\n' > "$seeds/template/default"
printf 'shots/{name}/{{x}}_{frame}.{ext}\ncolor,albedo,id,instance\njpeg\n' > "$seeds/template/braces"
printf 'f{frame:012d}_{name}_{pass}.{ext}\n\nexr\n' > "$seeds/template/wide"

# glTF: the files of tests/scene's glTF tests (which that script writes too, identically).
python3 "$root/tests/scene/data/gltf/make.py"

cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$cc -std=c11 -O1 -I"$root/tests" -I/usr/include/stb -o "$tmp/make_images" "$here/make_images.c" \
  -ltinyexr -lz -lm
"$tmp/make_images" "$seeds" "$assets"
# EXR from another writer than tinyexr's: Blender's (OpenEXR's own; tools/validation/env_orientation)
for f in sun_zip_float sun_piz_half sun_dwaa_half; do
  cp "$root/tools/validation/env_orientation/$f.exr" "$seeds/exr/blender_$f.exr"
done
