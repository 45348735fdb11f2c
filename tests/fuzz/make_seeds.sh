#!/usr/bin/env bash
# make_seeds.sh: (re)writes tests/fuzz/seeds/ and tests/fuzz/assets/ from the documentation and
# the examples, so that the fuzzers start from every documented form. Run from anywhere; commit
# what it writes. Needs a C compiler, zlib and stb_image_write (libstb-dev).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seeds=$here/seeds
assets=$here/assets
rm -rf "$seeds"
mkdir -p "$assets" "$seeds"/{scene,job,joblist,template,obj,ply,gltf,png,jpeg,hdr}

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

# Templates: a template line, a pass list, a format name (fuzz_template.c).
printf '{frame:05d}_{pass}.{ext}\ndepth,normal\npng\n' > "$seeds/template/default"
printf 'shots/{name}/{{x}}_{frame}.{ext}\ncolor,albedo,id,instance\njpeg\n' > "$seeds/template/braces"
printf 'f{frame:012d}_{name}_{pass}.{ext}\n\nexr\n' > "$seeds/template/wide"

# glTF: the files of tests/scene's glTF tests (which that script writes too, identically).
python3 "$root/tests/scene/data/gltf/make.py"

cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$cc -std=c11 -O1 -I"$root/tests" -I/usr/include/stb -o "$tmp/make_images" "$here/make_images.c" -lz -lm
"$tmp/make_images" "$seeds" "$assets"
